/* A watchdog for the tests where a bug would hang (a lost kick, a lost interrupt, a vcpu
 * that never starts): the test names each phase as it enters it, with the seconds it may
 * take; if a phase takes longer, the test fails at once, naming the phase, instead of
 * running into the runner's 300 s timeout.
 *
 * The watchdog is a thread of its own that blocks every signal, so that nothing a test
 * does to signals or signal masks (the run mask of a vcpu may block them all) can keep it
 * from firing, and no signal meant for a test thread lands on it. Under valgrind or ASan
 * (LIBKVM_TEST_INSTRUMENTED set) every phase may take 4 times as long. */
#ifndef LIBKVM_TEST_WATCHDOG_H
#define LIBKVM_TEST_WATCHDOG_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *_Atomic watchdog_phase_name;
static _Atomic long watchdog_deadline; /* CLOCK_MONOTONIC seconds */
static _Atomic unsigned watchdog_phase_seconds;

static inline long watchdog_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

static inline void *watchdog_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec tick = { 0, 200 * 1000 * 1000 };
		nanosleep(&tick, NULL);
		if (watchdog_now() <= atomic_load(&watchdog_deadline))
			continue;
		/* No stdio: a hung thread may hold the lock of stderr. */
		char msg[256];
		int n = snprintf(msg, sizeof(msg), "watchdog: phase \"%s\" hung: no progress in %u s\n",
				 atomic_load(&watchdog_phase_name), atomic_load(&watchdog_phase_seconds));
		if (write(2, msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : strlen(msg)) < 0)
			_exit(1);
		_exit(1);
	}
	return NULL;
}

static inline void watchdog_begin(void)
{
	sigset_t all, old;
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
		abort();
	pthread_t t;
	int e = pthread_create(&t, NULL, watchdog_thread, NULL);
	if (e == 0)
		e = pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		fprintf(stderr, "watchdog: pthread_create: %s\n", strerror(e));
		exit(1);
	}
}

/* The test enters phase `name` (a string that outlives the test), which may take
 * `seconds`. The first call starts the watchdog. */
static inline void watchdog_phase(const char *name, unsigned seconds)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	if (getenv("LIBKVM_TEST_INSTRUMENTED"))
		seconds *= 4;
	atomic_store(&watchdog_phase_name, name);
	atomic_store(&watchdog_phase_seconds, seconds);
	atomic_store(&watchdog_deadline, watchdog_now() + (long)seconds);
	pthread_once(&once, watchdog_begin);
}

#endif
