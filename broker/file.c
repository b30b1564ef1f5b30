/*  file — whole-buffer positional reads and writes. See file.h. */
#include "file.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

int
hd_file_write_at (int fd, const void *data, size_t size, uint64_t offset)
{
    const uint8_t *at = data;
    while (size > 0) {
        ssize_t written = pwrite (fd, at, size, (off_t) offset);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0) {
            if (written == 0)
                errno = EIO;
            return -1;
        }
        at += written;
        size -= (size_t) written;
        offset += (uint64_t) written;
    }
    return 0;
}

ssize_t
hd_file_read_at (int fd, void *data, size_t size, uint64_t offset)
{
    uint8_t *at = data;
    size_t done = 0;
    while (done < size) {
        ssize_t got = pread (fd, at + done, size - done, (off_t) (offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        done += (size_t) got;
    }
    return (ssize_t) done;
}
