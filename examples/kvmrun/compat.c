/* COMPAT SHIM, to be deleted when libkvm has kvm_kick_vcpu (see compat.h). */
#define _GNU_SOURCE
#include "compat.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

/* The kick: set the vcpu's immediate_exit (a KVM_RUN about to start returns at once),
 * then signal its thread (a KVM_RUN in progress returns EINTR). */
#define KICK_SIGNAL SIGUSR1
#define MAX_KICKABLE 256

static struct {
	int fd;
	pthread_t thread;
	struct kvm_run *run;
} kickable[MAX_KICKABLE];
static int nkickable;
static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;

static void kick_handler(int sig)
{
	(void)sig;
}

int compat_vcpu_started(int vcpu_fd)
{
	struct kvm_run *run = kvm_run_area();
	if (!run)
		return -1;
	pthread_mutex_lock(&kick_lock);
	if (nkickable == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = kick_handler;
		sa.sa_flags = SA_RESTART; /* KVM_RUN is never restarted; other calls are */
		sigemptyset(&sa.sa_mask);
		sigaction(KICK_SIGNAL, &sa, NULL);
	}
	if (nkickable == MAX_KICKABLE) {
		pthread_mutex_unlock(&kick_lock);
		errno = ENOSPC;
		return -1;
	}
	kickable[nkickable].fd = vcpu_fd;
	kickable[nkickable].thread = pthread_self();
	kickable[nkickable].run = run;
	nkickable++;
	pthread_mutex_unlock(&kick_lock);
	return 0;
}

int compat_kick_vcpu(int vcpu_fd)
{
	int r = -1;
	errno = EBADF;
	pthread_mutex_lock(&kick_lock);
	for (int i = 0; i < nkickable; i++) {
		if (kickable[i].fd != vcpu_fd)
			continue;
		__atomic_store_n(&kickable[i].run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		r = pthread_kill(kickable[i].thread, KICK_SIGNAL) == 0 ? 0 : -1;
		break;
	}
	pthread_mutex_unlock(&kick_lock);
	return r;
}
