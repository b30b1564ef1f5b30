/*  record — an event's two frames, with their bytes and sizes read once.

    zmq_msg_data and zmq_msg_size are calls into libzmq that the compiler
    cannot fold: the log, its hot cache and the fan-out asked each frame
    again and again, a dozen calls an event on the publish path. They take
    a record instead, whose bytes and sizes were read once.
*/
#ifndef HD_RECORD_H_INCLUDED
#define HD_RECORD_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct {
    //  Shared (zmq_msg_copy), never consumed, by a callee that keeps the
    //  record past the call. NULL for a part whose bytes are borrowed: the
    //  callee copies what it keeps of them (each callee says how long
    //  borrowed bytes must stay good).
    zmq_msg_t *envelope_frame, *payload_frame;
    const uint8_t *envelope, *payload; // the bytes of each part
    size_t envelope_size, payload_size;
} hd_record_t;

//  A record of two frames, their bytes and sizes read now: valid while the
//  frames stay where they are (a very small message holds its bytes inside
//  the zmq_msg_t, so moving the frame moves them).
static inline hd_record_t
hd_record_of (zmq_msg_t *envelope, zmq_msg_t *payload)
{
    return (hd_record_t){envelope,
                         payload,
                         zmq_msg_data (envelope),
                         zmq_msg_data (payload),
                         zmq_msg_size (envelope),
                         zmq_msg_size (payload)};
}

#endif
