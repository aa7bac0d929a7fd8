#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian 12 package lcpfs needs to build, test and benchmark.
#   build:  gcc make pkg-config libfuse3-dev libopenblas-dev liblapacke-dev
#           libxxhash-dev libjansson-dev (JSON headers) libzstd-dev (entropy
#           and lossless coding) zlib1g-dev (zip CRC-32)
#   run:    fuse3 (fusermount3, mount.fuse3)
#   test:   libcriterion-dev, python3-numpy and python3-torch (real readers),
#           attr (getfattr), util-linux, e2fsprogs, librsvg2-bin
#           (rsvg-convert renders `lcpfs inspect --svg` pictures)
#   test-distributed and its benchmark: glusterfs-server and glusterfs-client
#           (a private two-brick volume on loopback), sshfs and
#           openssh-server (a backing without xattrs), iproute2 (tc)
#   fuzz:   clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes
#           for make fuzz)
set -eu
PKGS="gcc make pkg-config libfuse3-dev fuse3 libopenblas-dev liblapacke-dev libxxhash-dev
libjansson-dev libzstd-dev zlib1g-dev libcriterion-dev python3-numpy python3-torch attr
librsvg2-bin glusterfs-server glusterfs-client sshfs openssh-server iproute2 clang
libclang-rt-14-dev"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS
