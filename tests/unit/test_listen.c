// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* listen_addr__parse: the one parser of aibld's status_listen and --listen */
#include <arpa/inet.h>
#include <netinet/in.h>
#include "test.h"
#include "listen.h"

/* spec, family (0: refused), address as inet_ntop writes it, port, loopback */
static const struct {
	const char *spec;
	int family;
	const char *addr;
	int port;
	bool loopback;
} listen_cases[] = {
    {"127.0.0.1:7070", AF_INET, "127.0.0.1", 7070, true},
    {"10.0.0.2:7071", AF_INET, "10.0.0.2", 7071, false},
    {"0.0.0.0:80", AF_INET, "0.0.0.0", 80, false},
    {":8000", AF_INET, "0.0.0.0", 8000, false},		  /* empty host: any (agent, simnode) */
    {"localhost:7070", AF_INET, "127.0.0.1", 7070, true}, /* aibld took localhost */
    {"[localhost]:1", AF_INET, "127.0.0.1", 1, true},
    {"[::1]:7070", AF_INET6, "::1", 7070, true},
    {"[fd00::2]:443", AF_INET6, "fd00::2", 443, false},
    {"[::ffff:127.0.0.1]:9", AF_INET6, "::ffff:127.0.0.1", 9, true},
    {"[127.0.0.1]:7070", AF_INET, "127.0.0.1", 7070, true}, /* aibld took it */
    {"fd00::2:7070", AF_INET6, "fd00::2", 7070, false},	    /* aibld: unbracketed v6 */
    {"127.0.0.1:0", AF_INET, "127.0.0.1", 0, true},	    /* agent: the kernel picks */
    {"127.0.0.1:65535", AF_INET, "127.0.0.1", 65535, true},
    {"7070", 0},
    {"", 0},
    {"127.0.0.1:", 0},
    {"127.0.0.1:65536", 0},
    {"127.0.0.1:-1", 0},
    {"127.0.0.1:80x", 0},
    {"127.0.0.1: 80", 0},
    {"10.0.0.300:80", 0}, /* a mistyped address is not sent to DNS */
    /* nor read in inet_aton's forms: 10.0.0.8, 8.0.0.2, 10.0.1.44,
     * 127.0.0.1, 0.0.0.1, 0.0.0.0, 127.0.0.1 */
    {"10.0.0.010:7071", 0},
    {"010.0.0.2:7071", 0},
    {"10.0.300:80", 0},
    {"127.1:80", 0},
    {"1:80", 0},
    {"0:7070", 0},
    {"0x7f.1:80", 0},
    {"[::1:80", 0},
    {"[::1]80", 0},
    {"[]:80", 0},
    {"no host!:80", 0},
};

static void parse_table(void)
{
	for (size_t i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]); i++) {
		const char *spec = listen_cases[i].spec;
		struct sockaddr_storage ss;
		char msg[256] = "", addr[INET6_ADDRSTRLEN] = "";
		socklen_t len = 0;
		int err, port;

		err = listen_addr__parse(spec, &ss, &len, msg, sizeof(msg));
		if (!listen_cases[i].family) {
			ASSERT_EQ(err, -EINVAL, spec);
			/* the message names the text and what is wanted */
			ASSERT_TRUE(strstr(msg, spec) && strstr(msg, "HOST:PORT"), msg);
			continue;
		}
		if (!ASSERT_OK(err, msg) || !ASSERT_EQ(ss.ss_family, listen_cases[i].family, spec))
			continue;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
			port = ntohs(s4->sin_port);
			ASSERT_EQ(len, sizeof(*s4), spec);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
			port = ntohs(s6->sin6_port);
			ASSERT_EQ(len, sizeof(*s6), spec);
		}
		ASSERT_STREQ(addr, listen_cases[i].addr, spec);
		ASSERT_EQ(port, listen_cases[i].port, spec);
		ASSERT_EQ(listen_addr__is_loopback(&ss), listen_cases[i].loopback, spec);
	}
}

static void optional_outputs(void)
{
	struct sockaddr_storage ss;

	ASSERT_OK(listen_addr__parse("127.0.0.1:1", &ss, NULL, NULL, 0), "no len, no msg");
	ASSERT_EQ(listen_addr__parse("nope", &ss, NULL, NULL, 0), -EINVAL, "no msg");
	ASSERT_EQ(ss.ss_family, AF_UNSPEC, "cleared on error");
}

static const struct test_case cases[] = {
    {"parse_table", parse_table},
    {"optional_outputs", optional_outputs},
};

TEST_MAIN("listen", cases)
