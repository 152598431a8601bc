/** xen-sshm: static shared memory between Xen domains. */
export {};
