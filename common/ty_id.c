#include "ty_id.h"
#include "ty_clock.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static const char s_alphabet [] = "0123456789abcdefghjkmnpqrstvwxyz";
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t  s_last_ms;
static uint32_t s_seq;

static uint64_t s_rng;       /* xorshift state, seeded once from urandom */

/* Random bits for the counter's start each ms. Not for secrets: ids only
   need to differ between processes that create them in the same ms. */
static uint32_t
s_random30 (void)
{
    if (s_rng == 0) {
        int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read (fd, &s_rng, sizeof s_rng) != sizeof s_rng)
                s_rng = 0;
            close (fd);
        }
        s_rng ^= ((uint64_t) getpid () << 32) ^ (uint64_t) ty_clock_mono_us ();
        if (s_rng == 0)
            s_rng = 0x9e3779b97f4a7c15ULL;
    }
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng >> 17) & 0x3fffffffu;
}

void
ty_id_new (char *buf)
{
    pthread_mutex_lock (&s_lock);
    int64_t ms = ty_clock_wall_ms ();
    /* Within one ms the counter goes on from a random start, so ids from
       one process stay ordered and two processes rarely meet. */
    if (ms <= s_last_ms) {
        ms = s_last_ms;
        s_seq++;
        if (s_seq >= (1u << 30)) {
            ms++;
            s_seq = s_random30 () & 0xfffffffu;
        }
    }
    else
        s_seq = s_random30 () & 0xfffffffu;   /* leave room to count up */
    s_last_ms = ms;
    uint32_t seq = s_seq;
    pthread_mutex_unlock (&s_lock);

    uint64_t t = (uint64_t) ms;
    for (int i = 9; i >= 0; i--) {
        buf [i] = s_alphabet [t & 31];
        t >>= 5;
    }
    for (int i = 15; i >= 10; i--) {
        buf [i] = s_alphabet [seq & 31];
        seq >>= 5;
    }
    buf [TY_ID_LEN] = '\0';
}

int
ty_id_valid (const char *s)
{
    if (!s || strlen (s) != TY_ID_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!strchr (s_alphabet, *p))
            return 0;
    return 1;
}
