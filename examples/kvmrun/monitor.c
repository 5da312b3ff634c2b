/* The control socket (-monitor unix:PATH): one client at a time, one command a line; the
 * answer's lines end with a line "OK" or "ERR <why>". Commands:
 *   migrate URI    start a live migration (the answer comes when it started)
 *   snapshot DIR   write a snapshot; the guest runs on
 *   stop, cont     pause and resume the vcpus
 *   info migrate   status, times, bytes, pages, rounds, dirty rate, throttle
 *   info status    running or paused
 *   quit           end kvmrun (status 0)
 * Also the timed -migrate-at SECONDS URI and -snapshot-at SECONDS DIR. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct machine *mach;
static int stopped_by_monitor;

static void *migrate_thread(void *arg)
{
	char *uri = arg;
	if (migrate_to(mach, uri) == 0)
		vcpus_end(0); /* the guest lives on elsewhere */
	free(uri);
	return NULL;
}

static int start_migration(const char *uri, char *why, size_t whylen)
{
	if (uri_valid(uri, why, whylen) < 0)
		return -1;
	char *copy = strdup(uri);
	pthread_t t;
	if (!copy || pthread_create(&t, NULL, migrate_thread, copy) != 0) {
		free(copy);
		snprintf(why, whylen, "cannot start the migration thread");
		return -1;
	}
	pthread_detach(t);
	return 0;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int take_snapshot(const char *dir, FILE *out)
{
	char why[300];
	double t = now_ms();
	if (snapshot_save(mach, dir, why, sizeof(why)) == 0) {
		fprintf(out, "snapshot: saved %s in %.1f ms\n", dir, now_ms() - t);
		return 0;
	}
	fprintf(out, "snapshot: failed: %s\n", why);
	return -1;
}

/* One command; the answer into `out`. Returns 1 for quit. */
static int command(char *line, FILE *out)
{
	char why[300];
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	if (strncmp(line, "migrate ", 8) == 0) {
		if (start_migration(line + 8, why, sizeof(why)) < 0)
			fprintf(out, "ERR %s\n", why);
		else
			fprintf(out, "OK\n");
	} else if (strncmp(line, "snapshot ", 9) == 0) {
		fprintf(out, take_snapshot(line + 9, out) == 0 ? "OK\n" : "ERR the snapshot failed\n");
	} else if (strcmp(line, "stop") == 0) {
		if (!stopped_by_monitor && vcpus_pause() == 0)
			stopped_by_monitor = 1;
		fprintf(out, stopped_by_monitor ? "OK\n" : "ERR the machine is ending\n");
	} else if (strcmp(line, "cont") == 0) {
		if (stopped_by_monitor)
			vcpus_resume();
		stopped_by_monitor = 0;
		fprintf(out, "OK\n");
	} else if (strcmp(line, "info migrate") == 0) {
		char buf[1024];
		migrate_info(buf, sizeof(buf));
		fprintf(out, "%sOK\n", buf);
	} else if (strcmp(line, "info status") == 0) {
		fprintf(out, "status: %s\nOK\n", vcpus_paused() ? "paused" : "running");
	} else if (strcmp(line, "quit") == 0) {
		fprintf(out, "OK\n");
		return 1;
	} else if (strcmp(line, "help") == 0 || !*line) {
		fprintf(out, "commands: migrate URI, snapshot DIR, stop, cont, info migrate, info status, quit\nOK\n");
	} else {
		fprintf(out, "ERR unknown command '%s' (try help)\n", line);
	}
	return 0;
}

static void *monitor_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		char why[300];
		int fd = uri_accept(lfd, why, sizeof(why));
		if (fd < 0)
			return NULL;
		int fd2 = dup(fd);
		FILE *in = fdopen(fd, "r"), *out = fd2 >= 0 ? fdopen(fd2, "w") : NULL;
		if (!in || !out) {
			if (in)
				fclose(in);
			else
				close(fd);
			if (out)
				fclose(out);
			else if (fd2 >= 0)
				close(fd2);
			continue;
		}
		char line[1024];
		int quit = 0;
		while (!quit && fgets(line, sizeof(line), in)) {
			quit = command(line, out);
			fflush(out);
		}
		fclose(in);
		fclose(out);
		if (quit) {
			if (stopped_by_monitor)
				vcpus_resume();
			vcpus_end(0);
			return NULL;
		}
	}
}

struct timed {
	double at;
	const char *what; /* URI or DIR */
	int migrate;
};

static void *timed_thread(void *arg)
{
	struct timed *t = arg;
	struct timespec d = { (time_t)t->at, (long)((t->at - (double)(time_t)t->at) * 1e9) };
	while (nanosleep(&d, &d) != 0 && errno == EINTR) {
	}
	if (t->migrate) {
		if (migrate_to(mach, t->what) == 0)
			vcpus_end(0);
	} else {
		take_snapshot(t->what, stderr);
	}
	free(t);
	return NULL;
}

static int start_timed(double at, const char *what, int migrate)
{
	struct timed *t = malloc(sizeof(*t));
	pthread_t th;
	if (!t)
		return -1;
	*t = (struct timed){ at, what, migrate };
	if (pthread_create(&th, NULL, timed_thread, t) != 0) {
		free(t);
		return -1;
	}
	pthread_detach(th);
	return 0;
}

int monitor_start(struct machine *m)
{
	mach = m;
	if (m->migrate_uri && start_timed(m->migrate_at, m->migrate_uri, 1) < 0)
		return -1;
	if (m->snapshot_dir && start_timed(m->snapshot_at, m->snapshot_dir, 0) < 0)
		return -1;
	if (!m->monitor)
		return 0;
	char why[300];
	int lfd = uri_listen(m->monitor, why, sizeof(why));
	if (lfd < 0) {
		complain("-monitor: %s", why);
		return -1;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, monitor_thread, (void *)(intptr_t)lfd) != 0) {
		close(lfd);
		return -1;
	}
	pthread_detach(t);
	return 0;
}
