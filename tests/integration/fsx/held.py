# SPDX-License-Identifier: Apache-2.0
"""Helpers of the tests that hold a file open across its commit
(test_mount_commit_*.sh): whole reads through a descriptor, kept as files
for the shell to compare."""
import os


def read_all(fd, size):
    """size bytes from offset 0 of fd (fewer only at its end)."""
    data = b""
    while len(data) < size:
        piece = os.pread(fd, size - len(data), len(data))
        if not piece:
            break
        data += piece
    return data


def keep(directory, name, data):
    """Writes data to directory/name."""
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)
