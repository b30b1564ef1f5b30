/*  CRC-32C against the published check values (RFC 3720 B.4, iSCSI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "crc32c.h"

static void
test_check_value (void **state)
{
    assert_int_equal (hd_crc32c (0, "123456789", 9), 0xE3069283);
}

static void
test_rfc3720_vectors (void **state)
{
    uint8_t zeros[32] = {0}, ones[32], ascending[32], descending[32];
    memset (ones, 0xFF, sizeof ones);
    for (int index = 0; index < 32; index++) {
        ascending[index] = (uint8_t) index;
        descending[index] = (uint8_t) (31 - index);
    }
    assert_int_equal (hd_crc32c (0, zeros, 32), 0x8A9136AA);
    assert_int_equal (hd_crc32c (0, ones, 32), 0x62A8AB43);
    assert_int_equal (hd_crc32c (0, ascending, 32), 0x46DD794E);
    assert_int_equal (hd_crc32c (0, descending, 32), 0x113FDB5C);
}

static void
test_incremental_equals_whole (void **state)
{
    uint8_t data[1000];
    for (int index = 0; index < 1000; index++)
        data[index] = (uint8_t) (index * 31 + 7);
    uint32_t whole = hd_crc32c (0, data, sizeof data);
    for (size_t split = 0; split <= sizeof data; split += 37)
        assert_int_equal (hd_crc32c (hd_crc32c (0, data, split), data + split, sizeof data - split),
                          whole);
    data[500] ^= 1;
    assert_int_not_equal (hd_crc32c (0, data, sizeof data), whole);
}

static void
test_instruction_matches_table (void **state)
{
    uint8_t data[4099];
    for (size_t index = 0; index < sizeof data; index++)
        data[index] = (uint8_t) (index * 131 + 17);
    for (size_t size = 0; size < sizeof data; size += 97)
        for (size_t offset = 0; offset < 8; offset++) {
            size_t length = size > offset ? size - offset : 0;
            assert_int_equal (hd_crc32c (7, data + offset, length),
                              hd_crc32c_portable (7, data + offset, length));
        }
    //  Every length up to three turns of the four-word loop, so every tail
    //  of words and bytes after it, at every alignment
    for (size_t length = 0; length <= 100; length++)
        for (size_t offset = 0; offset < 8; offset++)
            assert_int_equal (hd_crc32c (7, data + offset, length),
                              hd_crc32c_portable (7, data + offset, length));
    assert_int_equal (hd_crc32c_portable (0, "123456789", 9), 0xE3069283);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_check_value),
        cmocka_unit_test (test_rfc3720_vectors),
        cmocka_unit_test (test_incremental_equals_whole),
        cmocka_unit_test (test_instruction_matches_table),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
