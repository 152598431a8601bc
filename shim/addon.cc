// Node-API glue of the shim: checks and converts arguments (bad types throw TypeError), calls
// the plain C helpers of privcmd_sys.c, and turns -errno into an Error carrying `errno`
// (positive), `syscall` and, for open, `path`. The TypeScript wrapper (lib/hypervisor/shim.ts)
// adds the errno name and the Xen meaning.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "privcmd_sys.h"

namespace {

// Every mapping handed to JavaScript as an external ArrayBuffer. unmap() releases one early and
// detaches its ArrayBuffer (so no view can touch freed memory); otherwise the garbage collector's
// finalizer releases it.
struct Mapping {
  void* addr;
  size_t len;
  bool released;
};

std::mutex g_lock;
std::unordered_map<void*, Mapping*> g_live;

void Finalize(Napi::Env, void*, Mapping* m) {
  {
    std::lock_guard<std::mutex> guard(g_lock);
    if (!m->released) {
      m->released = true;
      g_live.erase(m->addr);
      xs_unmap(m->addr, m->len);
    }
  }
  delete m;
}

Napi::ArrayBuffer Wrap(Napi::Env env, void* addr, size_t len) {
  Mapping* m = new Mapping{addr, len, false};
  {
    std::lock_guard<std::mutex> guard(g_lock);
    g_live[addr] = m;
  }
  return Napi::ArrayBuffer::New(env, addr, len, Finalize, m);
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path = "") {
  std::string msg = std::string(syscall) + (path.empty() ? "" : " " + path) + ": " + std::strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool IsFd(const Napi::Value& v) {
  return v.IsNumber() && v.As<Napi::Number>().Int64Value() >= 0 &&
         v.As<Napi::Number>().Int64Value() <= 0x7fffffff;
}

bool IsDomid(const Napi::Value& v) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  return d >= 0 && d <= 0xffff && d == static_cast<double>(static_cast<int>(d));
}

// open(path) -> fd
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "open(path): path must be a string");
  std::string path = info[0].As<Napi::String>();
  int fd = xs_open_device(path.c_str());
  if (fd < 0) return ThrowErrno(env, -fd, "open", path);
  return Napi::Number::New(env, fd);
}

// close(fd)
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !IsFd(info[0])) return ThrowType(env, "close(fd): fd must be a non-negative integer");
  int rc = xs_close(info[0].As<Napi::Number>().Int32Value());
  if (rc < 0) return ThrowErrno(env, -rc, "close");
  return env.Undefined();
}

// pageSize() -> the host's page size
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(xs_page_size()));
}

// hypercall(fd, call: BigUint64Array(6) [op, a0..a4]) -> result, negative = -errno.
// A negative result is Xen's (or privcmd's) answer to the call, not a failure of the glue, so it
// is returned rather than thrown: the TypeScript caller knows which call it was.
Napi::Value Hypercall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !IsFd(info[0]) || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      info[1].As<Napi::TypedArray>().ElementLength() != 6)
    return ThrowType(env, "hypercall(fd, call): call must be a BigUint64Array of 6 (op and 5 arguments)");
  auto call = info[1].As<Napi::TypedArrayOf<uint64_t>>();
  long rc = xs_privcmd_hypercall(info[0].As<Napi::Number>().Int32Value(), call.Data());
  return Napi::Number::New(env, static_cast<double>(rc));
}

// allocBuffer(hypercallFd (-1: mlock'd anonymous pages), bytes) -> { address: bigint, buffer }
Napi::Value AllocBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    return ThrowType(env, "allocBuffer(hypercallFd, bytes): both must be numbers");
  int hfd = info[0].As<Napi::Number>().Int32Value();
  double want = info[1].As<Napi::Number>().DoubleValue();
  if (!(want >= 1) || want > 1073741824.0) return ThrowType(env, "allocBuffer: bytes must be 1..1 GiB");
  size_t ps = xs_page_size();
  size_t len = (static_cast<size_t>(want) + ps - 1) / ps * ps;
  void* addr = nullptr;
  int rc = xs_hypercall_buffer_alloc(hfd, len, &addr);
  if (rc < 0) return ThrowErrno(env, -rc, hfd >= 0 ? "mmap" : "mlock");
  Napi::Object out = Napi::Object::New(env);
  out.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(addr))));
  out.Set("buffer", Wrap(env, addr, len));
  return out;
}

// mmapBatchV2(fd, domid, gfns: BigUint64Array, errs: Int32Array) -> { buffer, rc: 0 | -ENOENT }
Napi::Value MmapBatchV2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !IsFd(info[0]) || !IsDomid(info[1]) || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      !info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    return ThrowType(env, "mmapBatchV2(fd, domid, gfns: BigUint64Array, errs: Int32Array)");
  auto gfns = info[2].As<Napi::TypedArrayOf<uint64_t>>();
  auto errs = info[3].As<Napi::TypedArrayOf<int32_t>>();
  size_t num = gfns.ElementLength();
  if (num == 0 || num > 0xffffffffu || errs.ElementLength() != num)
    return ThrowType(env, "mmapBatchV2: gfns must be non-empty and errs as long as gfns");
  void* addr = nullptr;
  int rc = xs_privcmd_mmapbatch_v2(info[0].As<Napi::Number>().Int32Value(),
                                   static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()),
                                   gfns.Data(), errs.Data(), static_cast<uint32_t>(num), &addr);
  if (rc < 0 && rc != -ENOENT) return ThrowErrno(env, -rc, "ioctl(IOCTL_PRIVCMD_MMAPBATCH_V2)");
  Napi::Object out = Napi::Object::New(env);
  out.Set("buffer", Wrap(env, addr, xs_mmapbatch_length(static_cast<uint32_t>(num))));
  out.Set("rc", Napi::Number::New(env, rc));
  return out;
}

// restrict(fd, domid)
Napi::Value Restrict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !IsFd(info[0]) || !IsDomid(info[1]))
    return ThrowType(env, "restrict(fd, domid): fd and domid must be integers");
  int rc = xs_privcmd_restrict(info[0].As<Napi::Number>().Int32Value(),
                               static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()));
  if (rc < 0) return ThrowErrno(env, -rc, "ioctl(IOCTL_PRIVCMD_RESTRICT)");
  return env.Undefined();
}

// unmap(buffer): munmap now and detach the ArrayBuffer. Unknown or released buffers: TypeError.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) return ThrowType(env, "unmap(buffer): buffer must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  Mapping* m = nullptr;
  {
    std::lock_guard<std::mutex> guard(g_lock);
    auto it = g_live.find(addr);
    if (addr == nullptr || it == g_live.end()) return ThrowType(env, "unmap: not a live mapping of this shim");
    m = it->second;
    g_live.erase(it);
    m->released = true;
  }
  int rc = xs_unmap(m->addr, m->len);
  // Detach before reporting anything: the memory is gone either way.
  ab.Detach();
  if (rc < 0) return ThrowErrno(env, -rc, "munmap");
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("hypercall", Napi::Function::New(env, Hypercall, "hypercall"));
  exports.Set("allocBuffer", Napi::Function::New(env, AllocBuffer, "allocBuffer"));
  exports.Set("mmapBatchV2", Napi::Function::New(env, MmapBatchV2, "mmapBatchV2"));
  exports.Set("restrict", Napi::Function::New(env, Restrict, "restrict"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  return exports;
}

}  // namespace

NODE_API_MODULE(xen_sshm_shim, Init)
