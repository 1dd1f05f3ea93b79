/*
 * replay_fsync - writes a ledger entry to FILE and makes it durable; on failure takes its error
 * path: "fsync failed: <error>" on stderr, the file is removed, exit 3. Success prints
 * "saved N bytes to FILE".
 *
 *   replay_fsync FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: replay_fsync FILE\n");
		return 2;
	}
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	time_t now = time(NULL);
	char line[128];
	int n = snprintf(line, sizeof(line), "ledger entry: transfer 42.00 at %lld\n",
			 (long long)now);
	if (write(fd, line, (size_t)n) != n) {
		fprintf(stderr, "write failed: %s\n", strerror(errno));
		return 3;
	}
	if (fsync(fd) < 0) {
		fprintf(stderr, "fsync failed: %s\n", strerror(errno));
		close(fd);
		unlink(argv[1]);
		return 3;
	}
	close(fd);
	printf("saved %d bytes to %s\n", n, argv[1]);
	return 0;
}
