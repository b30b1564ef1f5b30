/*  file — whole-buffer positional reads and writes for the log, the
    journal and the segment preparer, so a short transfer or an EINTR is
    handled in one place.
*/
#ifndef HD_FILE_H_INCLUDED
#define HD_FILE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

//  Writes all size bytes of data at offset, looping over partial writes and
//  EINTR. Returns 0, or -1 with errno set (a write that makes no progress
//  without a reason is EIO, so a full device never spins).
int hd_file_write_at (int fd, const void *data, size_t size, uint64_t offset);

//  Reads up to size bytes at offset, looping over partial reads and EINTR;
//  fewer only at the end of the file. Returns the bytes read, or -1 with
//  errno set.
ssize_t hd_file_read_at (int fd, void *data, size_t size, uint64_t offset);

#endif
