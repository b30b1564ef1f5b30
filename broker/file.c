/*  file — whole-buffer positional writes. See file.h. */
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
