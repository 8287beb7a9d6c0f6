/* The probe state (src/ops/probes.c), I/O-free: slots, the stall bound, readiness
 * reasons and their order, retired slots, draining. Times are given explicitly. */
#include <criterion/criterion.h>
#include <string.h>

#include "ops/probes.h"

static void setup(void) { probes_reset(); }

TestSuite(probes, .init = setup);

Test(probes, a_new_slot_is_alive_but_starting) {
    int s = probes_slot_new();
    cr_assert_eq(s, 0);
    const char *why = "x";
    uint64_t now = probes_now_ms();
    cr_assert(probes_healthy_at(now, &why));
    cr_assert_null(why);
    cr_assert_not(probes_ready_at(now, &why));
    cr_assert_str_eq(why, "starting");
    probes_slot_set_ready(s, NULL);
    cr_assert(probes_ready_at(now, &why));
    cr_assert_null(why);
}

Test(probes, a_loop_that_stops_beating_is_stalled) {
    int a = probes_slot_new(), b = probes_slot_new();
    probes_slot_set_ready(a, NULL);
    probes_slot_set_ready(b, NULL);
    probes_slot_beat(a);
    probes_slot_beat(b);
    uint64_t now = probes_now_ms();
    const char *why;
    cr_assert(probes_healthy_at(now + PROBES_STALL_MS, &why));
    cr_assert_not(probes_healthy_at(now + PROBES_STALL_MS + 50, &why));
    cr_assert_str_eq(why, "loop_stalled");
    cr_assert_not(probes_ready_at(now + PROBES_STALL_MS + 50, &why));
    cr_assert_str_eq(why, "loop_stalled");
    /* A retired loop (its server closed) no longer counts. */
    probes_slot_retire(a);
    probes_slot_retire(b);
    cr_assert(probes_healthy_at(now + 10 * PROBES_STALL_MS, &why));
}

Test(probes, the_first_failing_slot_gives_the_reason) {
    int a = probes_slot_new(), b = probes_slot_new();
    probes_slot_set_ready(a, NULL);
    probes_slot_set_ready(b, "subscription_lost");
    const char *why;
    cr_assert_not(probes_ready(&why));
    cr_assert_str_eq(why, "subscription_lost");
    cr_assert(probes_healthy(&why)); /* liveness does not depend on the store */
    probes_slot_set_ready(b, NULL);
    cr_assert(probes_ready(&why));
}

Test(probes, draining_wins_and_stays) {
    int a = probes_slot_new();
    probes_slot_set_ready(a, "store_unavailable");
    cr_assert_not(probes_draining());
    probes_set_draining();
    cr_assert(probes_draining());
    const char *why;
    cr_assert_not(probes_ready(&why));
    cr_assert_str_eq(why, "draining");
    probes_slot_set_ready(a, NULL);
    cr_assert_not(probes_ready(&why));
    cr_assert_str_eq(why, "draining");
    cr_assert(probes_healthy(&why)); /* alive while draining */
}

Test(probes, slots_are_bounded) {
    for (int i = 0; i < PROBES_MAX_SLOTS; i++) cr_assert_eq(probes_slot_new(), i);
    cr_assert_eq(probes_slot_new(), -1);
    probes_slot_beat(-1); /* ignored */
    probes_slot_set_ready(PROBES_MAX_SLOTS, "x");
}
