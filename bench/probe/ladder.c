/*
 * ladder - loads bench/probe's ladder.bpf.o with only the named programs, attaches them,
 * drains its ring buffer every 10 ms (like the agent's timer), prints "ready" and runs until
 * SIGINT / SIGTERM.
 *
 *   ladder OBJ PROG...
 */
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_sig(int s)
{
	stop = 1;
}
static int on_rec(void *ctx, void *d, size_t n)
{
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: ladder OBJ PROG...\n");
		return 2;
	}
	struct bpf_object *o = bpf_object__open_file(argv[1], NULL);
	if (!o) {
		perror("ladder: open");
		return 1;
	}
	struct bpf_program *p;
	bpf_object__for_each_program(p, o)
	{
		int on = 0;
		for (int i = 2; i < argc; i++)
			on |= !strcmp(argv[i], bpf_program__name(p));
		bpf_program__set_autoload(p, on);
	}
	if (bpf_object__load(o)) {
		fprintf(stderr, "ladder: load failed\n");
		return 1;
	}
	bpf_object__for_each_program(p, o)
	{
		if (bpf_program__autoload(p) && !bpf_program__attach(p)) {
			fprintf(stderr, "ladder: attaching %s failed\n", bpf_program__name(p));
			return 1;
		}
	}
	struct ring_buffer *rb = ring_buffer__new(
		bpf_map__fd(bpf_object__find_map_by_name(o, "rb")), on_rec, NULL, NULL);
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		if (rb)
			ring_buffer__consume(rb);
		usleep(10000);
	}
	ring_buffer__free(rb);
	bpf_object__close(o);
	return 0;
}
