/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Message authentication between controller and agents (and local hint
 * posters): HMAC-SHA256 with a shared key over the body, a timestamp and
 * an optional nonce chosen by the requester.
 *
 *   header:  X-Aibl-Signature: t=<unix seconds>,n=<nonce>,sig=<64 hex>
 *   MAC over: "aibl-v1\n" <t> "\n" <nonce> "\n" <body>
 *
 * The controller signs every GET /v1/report (with a fresh nonce, see
 * aibl_auth__sign_req) with the node's own key (aibl_key__derive); the
 * agent answers only such requests and signs its response with that
 * nonce, so a recorded report cannot be replayed. Requests without a
 * nonce (POST /v1/hints) are bounded by the timestamp window and the
 * replay guard.
 */
#ifndef AIBL_AUTH_H
#define AIBL_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIBL_AUTH_HEADER    "X-Aibl-Signature"
#define AIBL_NONCE_HEADER   "X-Aibl-Nonce"
#define AIBL_AUTH_KEY_MAX   256
#define AIBL_AUTH_NONCE_MAX 64
#define AIBL_AUTH_HDR_MAX   192
#define AIBL_AUTH_WINDOW_S  30

struct aibl_key {
	unsigned char key[AIBL_AUTH_KEY_MAX];
	size_t len;
};

/* Read a key file: its bytes with trailing whitespace trimmed, at least 16.
 * Refuses group/world readable files. 0 or -errno; msg says why. */
int aibl_key__load(const char *path, struct aibl_key *key, char *msg, size_t msglen);

/*
 * Per-node keys: HKDF-SHA256 of the master key (aibld's agent_key_file),
 * salt "aibl-node-key-v1", info the node's name; 32 bytes written as 64
 * hex characters, the text of the agent's --key file (aibl-agent
 * --derive-key prints it). A node's key signs only that node's reports:
 * a compromised node cannot forge another's, nor derive the master.
 */
int aibl_key__derive(const struct aibl_key *master, const char *node, struct aibl_key *out);

/*
 * Report requests are signed too, so only the key's holder can read a
 * report and the agent signs no nonce an outsider chose. Same header
 * format, MAC over "aibl-req-v1\n" t "\n" nonce "\n" what, what being
 * AIBL_AUTH_REQ_REPORT; the nonce (not empty) is what the answer is
 * signed for.
 */
#define AIBL_AUTH_REQ_REPORT "GET /v1/report"
/* a model load (aibl-agent POST /v1/load): what is this and the model's name */
#define AIBL_AUTH_REQ_LOAD "POST /v1/load "
/* a model unload (aibl-agent POST /v1/unload): the same with this */
#define AIBL_AUTH_REQ_UNLOAD "POST /v1/unload "
/* the longest "what" of a load or unload (aibl_auth__unload_what()) */
#define AIBL_AUTH_WHAT_MAX 192
/*
 * What an unload is signed for: AIBL_AUTH_REQ_UNLOAD and the model, and
 * " drain_timeout_ms=N" where the request states its own bound on the
 * drain (drain_timeout_ms >= 0), so nobody on the path can cut the drain
 * short or stretch it. -EINVAL where it does not fit buf.
 */
int aibl_auth__unload_what(char *buf, size_t len, const char *model, long drain_timeout_ms);
/*
 * A balancer's count of its open connections, sent on a poll (the report
 * header X-Aibl-Open-Flows, report.h): signed on its own, in header
 * AIBL_OPEN_SIG_HEADER, for what this and the count's value, with the
 * poll's nonce. An agent with a key takes only a count signed so, with the
 * nonce of the poll it came on; its own header, so that an agent which
 * knows no counts verifies the poll as before.
 */
#define AIBL_OPEN_SIG_HEADER "X-Aibl-Open-Signature"
#define AIBL_AUTH_REQ_OPEN   "X-Aibl-Open-Flows: "
int aibl_auth__sign_req(const struct aibl_key *key, uint64_t t, const char *nonce, const char *what,
			char *hdr, size_t hdrlen);

/* Write the header value for body/nonce at time t into hdr. 0 or -errno. */
int aibl_auth__sign(const struct aibl_key *key, uint64_t t, const char *nonce, const void *body,
		    size_t len, char *hdr, size_t hdrlen);

/* a header value, parsed */
struct aibl_sig {
	uint64_t t;
	char nonce[AIBL_AUTH_NONCE_MAX + 1];
	unsigned char mac[32];
};

/*
 * Parse a header value in its one canonical spelling (what aibl_auth__sign
 * writes: no sign, space or leading zero in t, lowercase hex, nothing
 * after). 0 or -EBADMSG with *why (when not NULL) saying what is wrong.
 */
int aibl_auth__parse(const char *hdr, struct aibl_sig *s, const char **why);
/* 0 when the parsed signature's time is within window_s of now, else
 * -ETIME: what a server can tell of a signature before its body is in */
int aibl_auth__check_time(const struct aibl_sig *s, uint64_t now, unsigned int window_s);

/*
 * Check a header value. expect_nonce NULL: any nonce accepted. 0 when valid;
 * -EBADMSG malformed header, -EPERM wrong MAC, -ETIME outside the window,
 * -ESTALE nonce mismatch.
 */
int aibl_auth__verify(const struct aibl_key *key, const char *hdr, const char *expect_nonce,
		      const void *body, size_t len, uint64_t now, unsigned int window_s);
/* the same for a parsed header */
int aibl_auth__verify_sig(const struct aibl_key *key, const struct aibl_sig *s,
			  const char *expect_nonce, const void *body, size_t len, uint64_t now,
			  unsigned int window_s);
/* a parsed request signature; errors as aibl_auth__verify */
int aibl_auth__verify_req_sig(const struct aibl_key *key, const struct aibl_sig *s,
			      const char *what, uint64_t now, unsigned int window_s);
/* a short reason for an error of the functions above */
const char *aibl_auth__strerror(int err);

/*
 * Replay guard for requests without a server-chosen nonce (POST /v1/hints):
 * a signature already accepted within the window is refused, so a captured
 * request cannot be sent again (to this agent; another agent sharing the
 * key has its own guard, and the body names no node). Holds the last
 * AIBL_REPLAY_SLOTS accepted signatures: more than that many accepted
 * requests inside one window push the oldest out.
 */
#define AIBL_REPLAY_SLOTS 4096

struct aibl_replay_ent {
	uint64_t t; /* the signature's timestamp */
	uint64_t h; /* hash of its MAC (parsed: one per signature, whatever the spelling) */
};

struct aibl_replay {
	pthread_mutex_t lock;
	unsigned int next;
	struct aibl_replay_ent ent[AIBL_REPLAY_SLOTS];
};

void aibl_replay__init(struct aibl_replay *r);
/* After aibl_auth__verify_sig() accepted s: true when the same signature
 * was accepted before within the window (a replay), else records it and
 * returns false. */
bool aibl_replay__seen(struct aibl_replay *r, const struct aibl_sig *s, uint64_t now,
		       unsigned int window_s);

/* Fill buf with a random hex nonce of 32 characters. */
int aibl_auth__nonce(char *buf, size_t buflen);

#endif
