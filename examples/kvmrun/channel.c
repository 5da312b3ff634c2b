/* Migration and monitor URIs: "tcp:HOST:PORT", "unix:PATH", and for migration also
 * "file:PATH" (the stream written to or read from a file). Every fd is O_CLOEXEC. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct uri {
	int unix_path, file;
	char host[256];
	char port[16];
	struct sockaddr_un sun;
};

static int parse(const char *uri, struct uri *u, char *why, size_t whylen)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(uri, "unix:", 5) == 0) {
		const char *p = uri + 5;
		if (!*p || strlen(p) >= sizeof(u->sun.sun_path)) {
			snprintf(why, whylen, "'%s': the socket path is empty or too long", uri);
			return -1;
		}
		u->unix_path = 1;
		u->sun.sun_family = AF_UNIX;
		strcpy(u->sun.sun_path, p);
		return 0;
	}
	if (strncmp(uri, "file:", 5) == 0) {
		if (!uri[5]) {
			snprintf(why, whylen, "'%s': the file name is empty", uri);
			return -1;
		}
		u->file = 1;
		return 0;
	}
	if (strncmp(uri, "tcp:", 4) == 0) {
		const char *p = uri + 4, *colon = strrchr(p, ':');
		if (!colon || colon == p || (size_t)(colon - p) >= sizeof(u->host) || !colon[1] ||
		    strlen(colon + 1) >= sizeof(u->port) || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
			snprintf(why, whylen, "'%s' is not tcp:HOST:PORT", uri);
			return -1;
		}
		memcpy(u->host, p, (size_t)(colon - p));
		strcpy(u->port, colon + 1);
		return 0;
	}
	snprintf(why, whylen, "'%s': a URI is tcp:HOST:PORT, unix:PATH or file:PATH", uri);
	return -1;
}

int uri_valid(const char *uri, char *why, size_t whylen)
{
	struct uri u;
	return parse(uri, &u, why, whylen);
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int uri_is_file(const char *uri)
{
	return strncmp(uri, "file:", 5) == 0;
}

int uri_connect(const char *uri, char *why, size_t whylen)
{
	struct uri u;
	if (parse(uri, &u, why, whylen) < 0)
		return -1;
	if (u.file) {
		int fd = open(uri + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			snprintf(why, whylen, "cannot create %s: %s", uri + 5, strerror(errno));
		return fd;
	}
	if (u.unix_path) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&u.sun, sizeof(u.sun)) < 0) {
			snprintf(why, whylen, "cannot connect to %s: %s", uri, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		return fd;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int e = getaddrinfo(u.host, u.port, &hints, &res);
	if (e) {
		snprintf(why, whylen, "cannot connect to %s: %s", uri, gai_strerror(e));
		return -1;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, whylen, "cannot connect to %s: %s", uri, strerror(err));
		return -1;
	}
	nodelay(fd);
	return fd;
}

int uri_listen(const char *uri, char *why, size_t whylen)
{
	struct uri u;
	if (parse(uri, &u, why, whylen) < 0)
		return -1;
	if (u.file) {
		int fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			snprintf(why, whylen, "cannot open %s: %s", uri + 5, strerror(errno));
		return fd;
	}
	int fd;
	if (u.unix_path) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			unlink(u.sun.sun_path); /* a stale socket of an earlier run */
			if (bind(fd, (struct sockaddr *)&u.sun, sizeof(u.sun)) < 0 || listen(fd, 4) < 0) {
				snprintf(why, whylen, "cannot listen on %s: %s", uri, strerror(errno));
				close(fd);
				return -1;
			}
		}
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
		int e = getaddrinfo(u.host, u.port, &hints, &res);
		if (e) {
			snprintf(why, whylen, "cannot listen on %s: %s", uri, gai_strerror(e));
			return -1;
		}
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd >= 0 && (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4) < 0)) {
			snprintf(why, whylen, "cannot listen on %s: %s", uri, strerror(errno));
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0)
			return -1;
	}
	if (fd < 0)
		snprintf(why, whylen, "cannot listen on %s: %s", uri, strerror(errno));
	return fd;
}

int uri_accept(int lfd, char *why, size_t whylen)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			nodelay(fd);
			return fd;
		}
		if (errno != EINTR && errno != ECONNABORTED) {
			snprintf(why, whylen, "accept: %s", strerror(errno));
			return -1;
		}
	}
}
