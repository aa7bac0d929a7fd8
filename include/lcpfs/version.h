/* SPDX-License-Identifier: Apache-2.0 */
/* The one version string of lcpfs, shown by `lcpfs --version` for the tool
 * and the daemon alike. */
#ifndef LCPFS_VERSION_H
#define LCPFS_VERSION_H

#define LCPFS_VERSION_STRING "0.1.0"

#endif
