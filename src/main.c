/* Entry point: placeholder until the roles land. */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "dsock: not built yet\n");
    return 1;
}
