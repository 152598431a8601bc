/*
 * xen-sshm-vocabulary.h: Xen's shared vocabulary for the guest program, generated from
 * lib/vocabulary.ts by test/guest/vocabulary-header.ts (`node dist/test/guest/vocabulary-header.js
 * --write`). Do not edit: test/guest/vocabulary.test.ts fails when it differs.
 */
#ifndef XEN_SSHM_VOCABULARY_H
#define XEN_SSHM_VOCABULARY_H

/* Xen's page, on x86_64 and arm64 alike. */
#define XEN_SSHM_PAGE_SIZE 4096u
/* Real domains are 0 .. XEN_SSHM_DOMID_FIRST_RESERVED - 1. */
#define XEN_SSHM_DOMID_FIRST_RESERVED 0x7ff0u
/* A region ID: 1 to XEN_SSHM_MAX_ID_LENGTH bytes, each one of XEN_SSHM_ID_CHARS. */
#define XEN_SSHM_MAX_ID_LENGTH 128
#define XEN_SSHM_ID_CHARS "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
/* The mirror's `role` and `prot` values. */
#define XEN_SSHM_ROLE_OWNER_TEXT "owner"
#define XEN_SSHM_ROLE_BORROWER_TEXT "borrower"
#define XEN_SSHM_PROT_R_TEXT "r"
#define XEN_SSHM_PROT_RW_TEXT "rw"

#endif /* XEN_SSHM_VOCABULARY_H */
