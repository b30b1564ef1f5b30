/*  arena: bump allocation, malloc fallback, reset, protobuf decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "arena.h"
#include "herald.pb-c.h"

static void
test_bump_and_fallback (void **state)
{
    hd_arena_t *arena = hd_arena_new (1024);
    ProtobufCAllocator *allocator = hd_arena_allocator (arena);
    uint8_t *first = allocator->alloc (allocator->allocator_data, 10);
    uint8_t *second = allocator->alloc (allocator->allocator_data, 10);
    assert_int_equal (second - first, 16); // 16-byte aligned pieces
    assert_int_equal (hd_arena_used (arena), 32);
    //  Too big for what is left: from malloc, and free really frees it
    uint8_t *big = allocator->alloc (allocator->allocator_data, 2000);
    assert_non_null (big);
    memset (big, 1, 2000);
    allocator->free (allocator->allocator_data, big);
    allocator->free (allocator->allocator_data, first); // a no-op
    hd_arena_reset (arena);
    assert_int_equal (hd_arena_used (arena), 0);
    assert_ptr_equal (allocator->alloc (allocator->allocator_data, 1), first);
    hd_arena_destroy (&arena);
    assert_null (arena);
    hd_arena_destroy (&arena);
}

static void
test_take (void **state)
{
    hd_arena_t *arena = hd_arena_new (64);
    uint8_t *first = hd_arena_take (arena, 20);
    assert_non_null (first);
    assert_ptr_equal (hd_arena_take (arena, 16), first + 32);
    //  16 bytes left: what does not fit is refused, never taken from malloc
    assert_null (hd_arena_take (arena, 17));
    assert_null (hd_arena_take (arena, SIZE_MAX));
    assert_ptr_equal (hd_arena_take (arena, 16), first + 48);
    assert_null (hd_arena_take (arena, 1));
    hd_arena_reset (arena);
    assert_ptr_equal (hd_arena_take (arena, 64), first);
    hd_arena_destroy (&arena);
}

static void
test_decodes_events (void **state)
{
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = "order-1";
    event.source = "shop";
    event.type = "orders.placed";
    Herald__Event__AttributesEntry entry = HERALD__EVENT__ATTRIBUTES_ENTRY__INIT;
    entry.key = "region";
    entry.value = "eu";
    Herald__Event__AttributesEntry *entries[] = {&entry};
    event.n_attributes = 1;
    event.attributes = entries;
    uint8_t buffer[256];
    size_t size = herald__event__pack (&event, buffer);
    //  Small arena: later decodes spill to malloc, all must stay correct
    hd_arena_t *arena = hd_arena_new (512);
    for (int round = 0; round < 100; round++) {
        Herald__Event *decoded = herald__event__unpack (hd_arena_allocator (arena), size, buffer);
        assert_non_null (decoded);
        assert_string_equal (decoded->id, "order-1");
        assert_string_equal (decoded->attributes[0]->value, "eu");
        herald__event__free_unpacked (decoded, hd_arena_allocator (arena));
        if (round % 10 == 9)
            hd_arena_reset (arena);
    }
    hd_arena_destroy (&arena);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_bump_and_fallback),
        cmocka_unit_test (test_take),
        cmocka_unit_test (test_decodes_events),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
