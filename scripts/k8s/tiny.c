/* tiny: the smallest useful test container for the local Kubernetes cluster.
 *
 *   tiny [EXIT_CODE [SLEEP_SECONDS [MESSAGE [FILE]]]]
 *
 * Prints one line (and writes MESSAGE to FILE, e.g. on a mounted volume), sleeps, exits
 * with EXIT_CODE (default 0). As PID 1 in a container the
 * kernel drops default-action signals, so SIGTERM/SIGINT are handled: exit 143/130 at once.
 * Built with `gcc -static` by build_cluster.sh and committed into an image `from scratch`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void on_signal(int sig) { _exit(128 + sig); }

int main(int argc, char **argv) {
  int code = argc > 1 ? atoi(argv[1]) : 0;
  int seconds = argc > 2 ? atoi(argv[2]) : 0;
  const char *message = argc > 3 ? argv[3] : "hello from tiny";
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("%s (exit %d after %d s)\n", message, code, seconds);
  fflush(stdout);
  if (argc > 4) {
    FILE *f = fopen(argv[4], "w");
    if (f == NULL || fprintf(f, "%s\n", message) < 0 || fclose(f) != 0) {
      perror(argv[4]);
      return 125;
    }
  }
  while (seconds-- > 0) sleep(1);
  return code;
}
