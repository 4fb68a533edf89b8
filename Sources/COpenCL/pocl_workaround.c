// PoCL 3's CPU driver keeps each compiled work-group function in a cache keyed by kernel, local
// size and specialisation (global offset zero or not, grid width), but releases a finished
// command's entry by kernel and local size alone. Two queues in one process running one kernel at
// one local size in two specialisations at once (the test suites do) release the wrong entry and
// abort: "pocl_release_dlhandle_cache: Assertion `found->ref_count > 0' failed". With generic
// work-group functions every entry is unique and the lookup is right. PoCL reads the variable
// when it starts, so it is set as the process starts, before any OpenCL call; a value the user set
// stays. Other OpenCL implementations ignore it.
#include <stdlib.h>

__attribute__((constructor)) static void mpo_pocl_generic_work_groups(void) {
    setenv("POCL_WORK_GROUP_SPECIALIZATION", "0", 0);
}
