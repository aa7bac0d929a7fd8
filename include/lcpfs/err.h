/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error codes shared by every lcpfs library call.
 *
 * Library functions return an lcp_err (0 = success) and hand results back
 * through out-parameters. The numeric values are pinned forever: they appear
 * in logs and tests, and new codes are only ever appended. errno is used only
 * at the FUSE boundary (src/fs), which maps these codes in one place.
 */
#ifndef LCPFS_ERR_H
#define LCPFS_ERR_H

typedef enum lcp_err {
	LCP_OK = 0,
	LCP_ERR_NOMEM = 1,       /* an allocation failed */
	LCP_ERR_INVAL = 2,       /* bad argument or configuration (caller's fault) */
	LCP_ERR_IO = 3,          /* a system call on the backing store failed */
	LCP_ERR_TRUNCATED = 4,   /* input ends before a field it declares */
	LCP_ERR_FORMAT = 5,      /* input is malformed (bad magic, bad field value) */
	LCP_ERR_VERSION = 6,     /* well-formed but of a version we do not read */
	LCP_ERR_CHECKSUM = 7,    /* stored checksum does not match stored bytes */
	LCP_ERR_UNSUPPORTED = 8, /* valid input we deliberately do not handle */
	LCP_ERR_QUALITY = 9,     /* the quality floor cannot be met */
	LCP_ERR_NOSPC = 10,      /* the backing filesystem is full */
	LCP_ERR_RANGE = 11,      /* offset, length or count out of range */
	LCP_ERR_NOPROVIDER = 12, /* only the no-op provider is available */
	LCP_ERR_NOENT = 13,      /* no such file */
	LCP_ERR_EXIST = 14,      /* file already exists */
	LCP_ERR_ACCES = 15,      /* permission denied */
	LCP_ERR_NOTEMPTY = 16,   /* directory not empty */
	LCP_ERR_ISDIR = 17,      /* is a directory */
	LCP_ERR_NOTDIR = 18,     /* a path component is not a directory */
	LCP_ERR_XDEV = 19,       /* across filesystems */
	LCP_ERR_PERM = 20,       /* operation not permitted */
	LCP_ERR_NAMETOOLONG = 21,/* a name is longer than NAME_MAX */
	LCP_ERR_MLINK = 22,      /* too many links, or an operation one file with
	                            several hard links cannot take */
	LCP_ERR_BUSY = 23,       /* in use */
	LCP_ERR_AGAIN = 24,      /* cannot tell now (a resource ran out, or the
	                            backing changed meanwhile): try again */
	LCP_ERR_ROFS = 25,       /* read-only filesystem */
	LCP_ERR_LOOP = 26,       /* a symbolic link where none may be */
	LCP_ERR_FBIG = 27,       /* file too large */
	LCP_ERR_TXTBSY = 28,     /* text file busy */
	LCP_ERR_MFILE = 29,      /* too many open files */
	LCP_ERR_OVERFLOW = 30,   /* a value does not fit its type */
	LCP_ERR__COUNT           /* not an error; number of codes above */
} lcp_err;

/* Returns a static, human-readable description; never NULL. Unknown values
 * give "unknown error". Thread-safe. */
const char *lcp_strerror(lcp_err err);

/* Returns the symbolic name ("LCP_ERR_CHECKSUM"); never NULL. Thread-safe. */
const char *lcp_err_name(lcp_err err);

#endif
