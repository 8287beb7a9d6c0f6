/* Prints the Lua source of one of the Redis store's scripts (src/store/redis_scripts.c),
 * by its name ("deliver", "deliver_batch", "conn_register", ...), for
 * bench/script_cost.py. A development tool: built by `make -C bench script-source`,
 * from the broker's own script table, so it measures what dsock runs. */
#include <stdio.h>
#include <string.h>

#include "store/redis_scripts.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRIPT_NAME\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < REDIS_SCRIPT_COUNT; i++)
        if (redis_scripts[i].name && !strcmp(redis_scripts[i].name, argv[1])) {
            fputs(redis_scripts[i].source, stdout);
            return 0;
        }
    fprintf(stderr, "%s: no script named %s\n", argv[0], argv[1]);
    return 1;
}
