/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE daemon: `lcpfs BACKING MOUNTPOINT [-o OPTIONS] [-f] [-d]`. */
#ifndef LCPFS_FS_FS_H
#define LCPFS_FS_FS_H

/* Parses the mount command line, mounts, serves until unmounted; returns the
 * process exit status. */
int lcp_fs_main(int argc, char **argv);

#endif
