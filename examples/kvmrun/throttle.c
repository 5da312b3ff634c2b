/* Auto-converge, as QEMU does it: while a migration throttles the guest, a thread kicks
 * every vcpu out of the guest once per 10 ms period, and each vcpu thread then sleeps
 * pct / (100 - pct) periods before it enters the guest again: the vcpus run (100 - pct)%
 * of the time, and dirty memory that much slower. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <pthread.h>
#include <time.h>

#define PERIOD_NS 10000000L

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static unsigned percent;
static int running;
static pthread_t kicker;

static void *kick_loop(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (percent) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += PERIOD_NS;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wake, &lock, &t);
		if (!percent)
			break;
		pthread_mutex_unlock(&lock);
		vcpus_kick_all();
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

void throttle_set(struct machine *m, unsigned pct)
{
	(void)m;
	if (pct > 99)
		pct = 99;
	pthread_mutex_lock(&lock);
	__atomic_store_n(&percent, pct, __ATOMIC_SEQ_CST);
	int start = pct && !running, stop = !pct && running;
	if (start)
		running = pthread_create(&kicker, NULL, kick_loop, NULL) == 0;
	if (stop)
		running = 0;
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&lock);
	if (stop)
		pthread_join(kicker, NULL);
}

void throttle_point(void)
{
	static __thread struct timespec next;
	unsigned pct = __atomic_load_n(&percent, __ATOMIC_SEQ_CST);
	if (!pct)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec < next.tv_nsec))
		return;
	long sleep_ns = (long)((long long)PERIOD_NS * pct / (100 - pct));
	struct timespec d = { sleep_ns / 1000000000L, sleep_ns % 1000000000L };
	while (nanosleep(&d, &d) != 0) {
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	next.tv_nsec += PERIOD_NS / 2;
	if (next.tv_nsec >= 1000000000L) {
		next.tv_sec++;
		next.tv_nsec -= 1000000000L;
	}
}
