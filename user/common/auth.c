// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <xxhash.h>
#include "auth.h"

int aibl_key__load(const char *path, struct aibl_key *key, char *msg, size_t msglen)
{
	/* room for the key and a line ending (CR LF): a longer file is
	 * refused, not cut where the buffer ends */
	unsigned char buf[sizeof(key->key) + 2];
	struct stat st;
	ssize_t n;
	int fd, err = 0;

	memset(key, 0, sizeof(*key));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(-err));
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		err = -EPERM;
		snprintf(msg, msglen,
			 "%s: key file must not be accessible by group or others (chmod 600)",
			 path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(-err));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	if (n < 16) {
		err = -EINVAL;
		snprintf(msg, msglen, "%s: key too short (%zd bytes, need at least 16)", path, n);
		goto out;
	}
	if ((size_t)n > sizeof(key->key) || st.st_size > (off_t)sizeof(buf)) {
		err = -EINVAL;
		snprintf(msg, msglen, "%s: key too long (at most %zu bytes)", path,
			 sizeof(key->key));
		goto out;
	}
	memcpy(key->key, buf, n);
	key->len = n;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return err;
}

/* domain: "aibl-v1" (reports, hint posts) or "aibl-req-v1" (report requests):
 * a MAC of one kind never checks as the other */
static int auth_mac_dom(const struct aibl_key *key, const char *domain, uint64_t t,
			const char *nonce, const void *body, size_t len, unsigned char out[32])
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac;
	char prefix[128];
	size_t outlen = 0;
	int n, err = 0;

	n = snprintf(prefix, sizeof(prefix), "%s\n%llu\n%s\n", domain, (unsigned long long)t,
		     nonce ? nonce : "");
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return -EINVAL;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		return -ENOSYS;
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx || !EVP_MAC_init(ctx, key->key, key->len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)prefix, n) ||
	    (len && !EVP_MAC_update(ctx, body, len)) || !EVP_MAC_final(ctx, out, &outlen, 32) ||
	    outlen != 32)
		err = -EIO;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return err;
}

static int auth_mac(const struct aibl_key *key, uint64_t t, const char *nonce, const void *body,
		    size_t len, unsigned char out[32])
{
	return auth_mac_dom(key, "aibl-v1", t, nonce, body, len, out);
}

int aibl_key__derive(const struct aibl_key *master, const char *node, struct aibl_key *out)
{
	static const char salt[] = "aibl-node-key-v1";
	unsigned char k[32];
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;
	EVP_KDF *kdf;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!node || !*node || !master->len)
		return -EINVAL;
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -ENOSYS;
	ctx = EVP_KDF_CTX_new(kdf);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	*p++ =
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)master->key, master->len);
	*p++ =
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, sizeof(salt) - 1);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)node, strlen(node));
	*p = OSSL_PARAM_construct_end();
	if (!ctx || EVP_KDF_derive(ctx, k, sizeof(k), params) <= 0)
		err = -EIO;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (err)
		return err;
	/* text, so that the key file the agent reads is what it signs with */
	for (int i = 0; i < 32; i++)
		sprintf((char *)out->key + 2 * i, "%02x", k[i]);
	out->len = 64;
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}

static bool nonce_ok(const char *nonce)
{
	if (!nonce)
		return true;
	if (strlen(nonce) > AIBL_AUTH_NONCE_MAX)
		return false;
	for (const char *p = nonce; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
			return false;
	return true;
}

int aibl_auth__sign(const struct aibl_key *key, uint64_t t, const char *nonce, const void *body,
		    size_t len, char *hdr, size_t hdrlen)
{
	unsigned char mac[32];
	char hex[65];
	int err, n;

	if (!nonce_ok(nonce))
		return -EINVAL;
	err = auth_mac(key, t, nonce, body, len, mac);
	if (err)
		return err;
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	n = snprintf(hdr, hdrlen, "t=%llu,n=%s,sig=%s", (unsigned long long)t, nonce ? nonce : "",
		     hex);
	return n < 0 || (size_t)n >= hdrlen ? -ENOSPC : 0;
}

/*
 * One spelling per signature: "t=" decimal digits (no sign, space or
 * leading zero, at most 19), ",n=" the nonce, ",sig=" 64 lowercase hex
 * digits, nothing after. strtoull and %x would take "+1", " 1", "01" and
 * upper case, each a new text for the same signature.
 */
int aibl_auth__parse(const char *hdr, struct aibl_sig *s, const char **why)
{
	const char *p, *sig, *w;
	size_t nlen, digits;

	memset(s, 0, sizeof(*s));
	w = "does not start with t=";
	if (!hdr || strncmp(hdr, "t=", 2) != 0)
		goto bad;
	p = hdr + 2;
	digits = strspn(p, "0123456789");
	w = "t= must be 1 to 19 decimal digits without sign, space or leading zero";
	if (!digits || digits > 19 || (p[0] == '0' && digits > 1))
		goto bad;
	for (size_t i = 0; i < digits; i++)
		s->t = s->t * 10 + (uint64_t)(p[i] - '0');
	p += digits;
	w = "no ,n= after the timestamp";
	if (strncmp(p, ",n=", 3) != 0)
		goto bad;
	p += 3;
	sig = strstr(p, ",sig=");
	w = "no ,sig= after the nonce";
	if (!sig)
		goto bad;
	nlen = sig - p;
	w = "nonce longer than 64 characters";
	if (nlen > AIBL_AUTH_NONCE_MAX)
		goto bad;
	memcpy(s->nonce, p, nlen);
	s->nonce[nlen] = '\0';
	w = "nonce has a character outside [A-Za-z0-9_-]";
	if (!nonce_ok(s->nonce))
		goto bad;
	sig += 5;
	w = "sig= must be 64 lowercase hex digits and end the header";
	if (strlen(sig) != 64)
		goto bad;
	for (int i = 0; i < 64; i++) {
		char ch = sig[i];
		int v = ch >= '0' && ch <= '9'	 ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
						 : -1;

		if (v < 0)
			goto bad;
		s->mac[i / 2] = (unsigned char)(s->mac[i / 2] << 4 | v);
	}
	return 0;
bad:
	if (why)
		*why = w;
	memset(s, 0, sizeof(*s));
	return -EBADMSG;
}

int aibl_auth__check_time(const struct aibl_sig *s, uint64_t now, unsigned int window_s)
{
	return s->t + window_s < now || s->t > now + window_s ? -ETIME : 0;
}

/* the MAC computed here against the one sent (constant time), then the
 * signature's time against ours within the window */
static int mac_and_time_ok(const unsigned char mac[32], const struct aibl_sig *s, uint64_t now,
			   unsigned int window_s)
{
	if (CRYPTO_memcmp(mac, s->mac, 32) != 0)
		return -EPERM;
	return aibl_auth__check_time(s, now, window_s);
}

int aibl_auth__verify_sig(const struct aibl_key *key, const struct aibl_sig *s,
			  const char *expect_nonce, const void *body, size_t len, uint64_t now,
			  unsigned int window_s)
{
	unsigned char mac[32];
	int err;

	err = auth_mac(key, s->t, s->nonce, body, len, mac);
	if (err)
		return err;
	err = mac_and_time_ok(mac, s, now, window_s);
	if (err)
		return err;
	if (expect_nonce && strcmp(expect_nonce, s->nonce) != 0)
		return -ESTALE;
	return 0;
}

#define AUTH_REQ_DOMAIN "aibl-req-v1"

int aibl_auth__sign_req(const struct aibl_key *key, uint64_t t, const char *nonce, const char *what,
			char *hdr, size_t hdrlen)
{
	unsigned char mac[32];
	char hex[65];
	int err, n;

	if (!nonce || !*nonce || !nonce_ok(nonce))
		return -EINVAL;
	err = auth_mac_dom(key, AUTH_REQ_DOMAIN, t, nonce, what, strlen(what), mac);
	if (err)
		return err;
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	n = snprintf(hdr, hdrlen, "t=%llu,n=%s,sig=%s", (unsigned long long)t, nonce, hex);
	return n < 0 || (size_t)n >= hdrlen ? -ENOSPC : 0;
}

int aibl_auth__verify_req_sig(const struct aibl_key *key, const struct aibl_sig *s,
			      const char *what, uint64_t now, unsigned int window_s)
{
	unsigned char mac[32];
	int err;

	if (!s->nonce[0])
		return -EBADMSG; /* the nonce is what the answer is signed for */
	err = auth_mac_dom(key, AUTH_REQ_DOMAIN, s->t, s->nonce, what, strlen(what), mac);
	if (err)
		return err;
	return mac_and_time_ok(mac, s, now, window_s);
}

int aibl_auth__verify(const struct aibl_key *key, const char *hdr, const char *expect_nonce,
		      const void *body, size_t len, uint64_t now, unsigned int window_s)
{
	struct aibl_sig s;

	if (aibl_auth__parse(hdr, &s, NULL))
		return -EBADMSG;
	return aibl_auth__verify_sig(key, &s, expect_nonce, body, len, now, window_s);
}

const char *aibl_auth__strerror(int err)
{
	switch (err) {
	case 0:
		return "valid";
	case -ENOKEY:
		return "not signed";
	case -EBADMSG:
		return "malformed signature header";
	case -EPERM:
		return "wrong key or altered message";
	case -ETIME:
		return "timestamp outside the window";
	case -ESTALE:
		return "signed for another nonce";
	default:
		return "cannot compute the signature";
	}
}

void aibl_replay__init(struct aibl_replay *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

/* keyed on the MAC, not on the header's text: the MAC covers t, the nonce
 * and the body, and a second spelling of a header has the same MAC */
bool aibl_replay__seen(struct aibl_replay *r, const struct aibl_sig *s, uint64_t now,
		       unsigned int window_s)
{
	uint64_t h = XXH3_64bits(s->mac, sizeof(s->mac));
	bool seen = false;

	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < AIBL_REPLAY_SLOTS && !seen; i++)
		seen = r->ent[i].h == h && r->ent[i].t == s->t && r->ent[i].t + window_s >= now;
	if (!seen) {
		r->ent[r->next] = (struct aibl_replay_ent){.t = s->t, .h = h};
		r->next = (r->next + 1) % AIBL_REPLAY_SLOTS;
	}
	pthread_mutex_unlock(&r->lock);
	return seen;
}

int aibl_auth__unload_what(char *buf, size_t len, const char *model, long drain_timeout_ms)
{
	int n = drain_timeout_ms >= 0 ? snprintf(buf, len, "%s%s drain_timeout_ms=%ld",
						 AIBL_AUTH_REQ_UNLOAD, model, drain_timeout_ms)
				      : snprintf(buf, len, "%s%s", AIBL_AUTH_REQ_UNLOAD, model);

	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

int aibl_auth__nonce(char *buf, size_t buflen)
{
	unsigned char r[16];

	if (buflen < 33)
		return -ENOSPC;
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -errno ? -errno : -EIO;
	for (int i = 0; i < 16; i++)
		sprintf(buf + 2 * i, "%02x", r[i]);
	return 0;
}
