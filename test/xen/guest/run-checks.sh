#!/bin/sh
# Runs every check of a list file (tab-separated: name, script, expected result, time limit in
# seconds, break flag) in order, and prints XENCHECK/XENLOG/XENTIME lines on the console.
# Scripts ending in .js are this package's compiled node checks (path relative to $XEN_PKG);
# others are shell scripts under /xen/ (checks/NAME.sh).
. /xen/lib.sh
list=$1
tab=$(printf '\t')
while IFS="$tab" read -r name script expect limit brk; do
  [ -n "$name" ] || continue
  case "$name" in \#*) continue ;; esac
  log=/tmp/check-$name.log
  start=$(now)
  case "$script" in
    *.js) set -- node "$XEN_PKG/$script" ;;
    *) set -- sh "/xen/$script" ;;
  esac
  XENCHECK_NAME=$name XENCHECK_BREAK=$brk timeout "$limit" "$@" >"$log" 2>&1 </dev/null
  rc=$?
  took=$(elapsed "$start")
  grep '^XENTIME ' "$log"
  detail=$(grep -v '^XENTIME ' "$log" | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-240)
  if [ $rc -eq 0 ]; then status=PASS; else status=FAIL; fi
  # busybox timeout kills with SIGTERM: 143.
  [ $rc -eq 143 ] && detail="timed out after ${limit}s; last output: $detail"
  if [ $status = FAIL ] || [ "$expect" = FAIL ] || [ "$name" = adhoc ]; then
    grep -v '^XENTIME ' "$log" | tail -n 60 | sed "s/^/XENLOG $name | /"
  fi
  echo "XENTIME check:$name $took"
  echo "XENCHECK $name $status $detail"
done < "$list"
