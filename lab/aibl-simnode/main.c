// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl-simnode: a simulated OpenAI-compatible model server with a latency
 * model (sim.h), for the demo, the tests and the routing benchmarks. Real
 * HTTP through libmicrohttpd, one thread per connection so a request can
 * simply sleep through its queueing, prefill and decode time.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <xxhash.h>
#include "cliopt.h"
#include "httpbody.h"
#include "listen.h"
#include "log.h"
#include "sim.h"

#define SN_MAX_BODY	  (4 * 1024 * 1024)
#define SN_MAX_OUT_TOKENS 65536

static struct sim sn_sim;
/* X-Aibl-Node on every response: which node served it, through a balancer */
static char sn_node[64];

enum sn_state { SN_PREFILL, SN_TOKENS, SN_DONE };

/* one streaming (or not) generation */
struct sn_gen {
	struct sim_req rq;
	bool chat, stream, include_usage, finished;
	enum sn_state state;
	uint32_t next; /* next token index */
	double t_next; /* when the next token is due */
	char id[40];
	char *prompt; /* rendered prompt, owned */
	char *reply;  /* accumulated output */
	size_t reply_len, reply_cap;
	char *out; /* pending bytes of the SSE stream */
	size_t out_len, out_off;
};

/* --node-name: one line, it goes into a response header */
static int sn_opt_node(const char *arg, void *dst, char *msg, size_t msglen)
{
	if (!arg[0] || strlen(arg) >= sizeof(sn_node) || strpbrk(arg, "\r\n")) {
		snprintf(msg, msglen, "1-%zu characters, one line", sizeof(sn_node) - 1);
		return -EINVAL;
	}
	snprintf(dst, sizeof(sn_node), "%s", arg);
	return 0;
}

/* what the command line sets */
struct sn_opts {
	struct sim_cfg cfg;
	struct listen_addr listen;
	const char *models, *resident;
	bool verbose;
};

#define SN_OPT(name, type, m, ...) CLIOPT(name, type, struct sn_opts, m, __VA_ARGS__)
static const struct cliopt sn_rows[] = {
    SN_OPT("listen", LISTEN, listen, .def = "127.0.0.1:8000", .help = "listen address"),
    SN_OPT("models", STR, models, .def = "sim-model:1000", .metavar = "LIST",
	   .help = "models it can serve: NAME:MiB[,NAME:MiB...]"),
    SN_OPT("resident", STR, resident, .metavar = "LIST", .def_help = "in order while they fit",
	   .help = "models loaded at start"),
    SN_OPT("mem-mb", UNUM, cfg.mem_mb, .max = 1e12, .def = "80000",
	   .help = "memory budget for resident models"),
    SN_OPT("nvml-ctl", STR, cfg.nvml_ctl, .metavar = "FILE",
	   .help = "write the memory its models take to FILE as the\n"
		   "fake NVML's controls (FAKE_NVML_CTL of an agent\n"
		   "with --nvml-lib tests/libfake_nvml.so)"),
    SN_OPT("load-ms", DOUBLE, cfg.load_ms, .max = 1e9, .def = "2000", .metavar = "MS",
	   .help = "time to load a non-resident model"),
    SN_OPT("lora-load-ms", DOUBLE, cfg.lora_load_ms, .max = 1e9, .def = "300", .metavar = "MS",
	   .help = "time to load a LoRA adapter"),
    SN_OPT("lora-overhead", DOUBLE, cfg.lora_overhead, .max = 100, .def = "0.1", .metavar = "F",
	   .help = "an adapter's requests slower by F"),
    SN_OPT("slots", UNUM, cfg.slots, .min = 1, .max = 100000, .def = "8",
	   .help = "requests served concurrently"),
    SN_OPT("queue", UNUM, cfg.queue_max, .max = 1e7, .def = "1024",
	   .help = "waiting requests before 429"),
    SN_OPT("prefill-base-ms", DOUBLE, cfg.prefill_base_ms, .max = 1e9, .def = "2", .metavar = "MS",
	   .help = "fixed prefill cost per request"),
    SN_OPT("prefill-ms-per-tok", DOUBLE, cfg.prefill_ms_per_tok, .max = 1e6, .def = "0.05",
	   .metavar = "MS", .help = "prefill cost per prompt token not cached"),
    SN_OPT("decode-ms-per-tok", DOUBLE, cfg.decode_ms_per_tok, .max = 1e6, .def = "5",
	   .metavar = "MS", .help = "time per output token"),
    SN_OPT("batch-penalty", DOUBLE, cfg.batch_penalty, .max = 100, .def = "0", .metavar = "F",
	   .help = "decode slower by F per other running request"),
    SN_OPT("shared-prefill", FLAG, cfg.shared_prefill,
	   .help = "prefills take turns on the node's compute, first come first"),
    SN_OPT("cache-tokens", UNUM, cfg.cache_tokens, .max = 1e15, .def = "100000",
	   .help = "KV/prefix cache capacity in tokens"),
    SN_OPT("max-sessions", UNUM, cfg.max_sessions, .min = 1, .max = 1e8, .def = "65536",
	   .help = "prefix cache entries"),
    SN_OPT("slowdown", DOUBLE, cfg.slowdown, .min = 0.001, .max = 1e6, .def = "1", .metavar = "F",
	   .help = "multiply every duration (slower accelerator)"),
    SN_OPT("cpu", FLAG, cfg.cpu, .help = "CPU-only node: durations also x --cpu-factor"),
    SN_OPT("cpu-factor", DOUBLE, cfg.cpu_factor, .min = 0.001, .max = 1e6, .def = "10",
	   .metavar = "F", .help = "CPU-only slowdown"),
    SN_OPT("jitter", DOUBLE, cfg.jitter, .max = 0.99, .def = "0", .metavar = "F",
	   .help = "+-F random spread of durations, from the seed"),
    SN_OPT("seed", UNUM, cfg.seed, .max = 9007199254740992.0, .def = "1",
	   .help = "seed for output text and jitter"),
    SN_OPT("chars-per-token", DOUBLE, cfg.chars_per_token, .min = 0.1, .max = 1e6, .def = "4",
	   .metavar = "F", .help = "prompt characters per token"),
    SN_OPT("llamacpp", FLAG, cfg.llamacpp,
	   .help = "imitate llama-server: its metrics names and GET /props"),
    SN_OPT("max-tokens", UNUM, cfg.default_max_tokens, .min = 1, .max = SN_MAX_OUT_TOKENS,
	   .def = "16", .help = "output tokens when a request gives none"),
    CLIOPT_VAR("node-name", FUNC, sn_node, .fn = sn_opt_node, .metavar = "NAME",
	       .def_help = "host name", .help = "X-Aibl-Node response header"),
    SN_OPT("verbose", FLAG, verbose, .short_name = 'v', .help = "debug logging"),
};

static const struct cliopt_prog sn_prog = {
    .name = "aibl-simnode",
    .synopsis = "Usage: aibl-simnode [OPTIONS]\n"
		"Simulated OpenAI-compatible model server with a latency model.",
    .epilog = "Endpoints: GET /v1/models, GET /metrics (vLLM names; --llamacpp:\n"
	      "llama-server's, and GET /props), GET /health,\n"
	      "POST /v1/completions, POST /v1/chat/completions (\"stream\": true -> SSE),\n"
	      "POST /v1/load_lora_adapter {\"lora_name\": NAME, \"lora_path\": PATH}\n"
	      "(\"base_model_name\": a parent other than the first model), and\n"
	      "POST /v1/unload_lora_adapter {\"lora_name\": NAME}: vLLM's runtime adapter API;\n"
	      "a NAME from --models loads or unloads that base model instead.\n"
	      "Session for the prefix cache: client address + X-Session-Id header or \"user\".",
    .opts = sn_rows,
    .nopts = CLIOPT_NOPTS(sn_rows),
};

/* ---- responses ---- */

static enum MHD_Result sn_reply(struct MHD_Connection *c, unsigned int status, const char *type,
				char *body)
{
	return http_reply(c, status, type, body, "X-Aibl-Node", sn_node);
}

static enum MHD_Result sn_error(struct MHD_Connection *c, unsigned int status, const char *type,
				const char *msg)
{
	json_t *o = json_pack("{s:{s:s, s:s, s:i}}", "error", "message", msg, "type", type, "code",
			      (int)status);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return sn_reply(c, status, "application/json", body);
}

/* ---- request parsing ---- */

static int sn_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	char *p;

	if (*len + n + 1 > *cap) {
		size_t ncap = (*cap ? *cap : 256);

		while (ncap < *len + n + 1)
			ncap *= 2;
		p = realloc(*buf, ncap);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* content: a string or an array of {"type":"text","text":...} parts */
static int sn_content(json_t *content, char **buf, size_t *len, size_t *cap, const char **why)
{
	size_t i;
	json_t *part, *text;

	if (json_is_string(content))
		return sn_append(buf, len, cap, json_string_value(content),
				 json_string_length(content));
	if (!json_is_array(content)) {
		*why = "message content must be a string or an array of parts";
		return -EINVAL;
	}
	json_array_foreach(content, i, part)
	{
		text = json_object_get(part, "text");
		if (!json_is_string(text)) {
			*why = "content part without a \"text\" string";
			return -EINVAL;
		}
		if (sn_append(buf, len, cap, json_string_value(text), json_string_length(text)))
			return -ENOMEM;
	}
	return 0;
}

/*
 * The prompt text as the prefix cache sees it: chat messages rendered as
 * "role: content\n" one after the other, so a conversation's next turn
 * starts with this turn's prompt followed by "assistant: <reply>\n".
 */
static int sn_render_prompt(json_t *req, bool chat, char **out, size_t *outlen, const char **why)
{
	size_t cap = 0, i;
	json_t *v, *msg, *role;
	int err = 0;

	*out = NULL;
	*outlen = 0;
	if (chat) {
		v = json_object_get(req, "messages");
		if (!json_is_array(v) || !json_array_size(v)) {
			*why = "\"messages\" must be a non-empty array";
			return -EINVAL;
		}
		json_array_foreach(v, i, msg)
		{
			role = json_object_get(msg, "role");
			if (!json_is_string(role)) {
				*why = "each message needs a \"role\" string";
				return -EINVAL;
			}
			if ((err = sn_append(out, outlen, &cap, json_string_value(role),
					     json_string_length(role))) ||
			    (err = sn_append(out, outlen, &cap, ": ", 2)) ||
			    (err = sn_content(json_object_get(msg, "content"), out, outlen, &cap,
					      why)) ||
			    (err = sn_append(out, outlen, &cap, "\n", 1)))
				return err;
		}
		return 0;
	}
	v = json_object_get(req, "prompt");
	if (json_is_string(v))
		return sn_append(out, outlen, &cap, json_string_value(v), json_string_length(v));
	if (json_is_array(v) && json_array_size(v)) {
		json_array_foreach(v, i, msg)
		{
			if (!json_is_string(msg)) {
				*why = "\"prompt\" array must hold strings";
				return -EINVAL;
			}
			if ((err = sn_append(out, outlen, &cap, json_string_value(msg),
					     json_string_length(msg))))
				return err;
		}
		return 0;
	}
	*why = "\"prompt\" must be a string or an array of strings";
	return -EINVAL;
}

/* ---- generation ---- */

static void sn_gen_free(struct sn_gen *g)
{
	if (!g)
		return;
	if (!g->finished) {
		/* the client went away mid-stream: give the slot back */
		const char *cont = g->reply ? g->reply : "";

		sim__finish(&sn_sim, &g->rq, cont, g->reply_len);
	}
	free(g->prompt);
	free(g->reply);
	free(g->out);
	free(g);
}

/* what the reply adds to the conversation's text (see sn_render_prompt) */
static char *sn_continuation(const struct sn_gen *g, size_t *len)
{
	char *s = NULL;
	int n;

	if (!g->chat) {
		*len = g->reply_len;
		return strdup(g->reply ? g->reply : "");
	}
	n = asprintf(&s, "assistant: %s\n", g->reply ? g->reply : "");
	if (n < 0)
		return NULL;
	*len = n;
	return s;
}

/* what the request asked for: vLLM answers with the adapter's name */
static const char *sn_model_name(const struct sn_gen *g)
{
	return g->rq.adapter ? sn_sim.loras[g->rq.lora].name : sn_sim.models[g->rq.model].name;
}

static void sn_gen_finish(struct sn_gen *g)
{
	size_t len = 0;
	char *cont = sn_continuation(g, &len);

	sim__finish(&sn_sim, &g->rq, cont ? cont : "", cont ? len : 0);
	free(cont);
	g->finished = true;
}

static int sn_next_token(struct sn_gen *g, const char **text)
{
	*text = sim__token_text(&sn_sim, &g->rq, g->next++);
	if (sn_append(&g->reply, &g->reply_len, &g->reply_cap, *text, strlen(*text)))
		return -ENOMEM;
	sim__token(&sn_sim, &g->rq);
	return 0;
}

static json_t *sn_usage(const struct sn_gen *g)
{
	return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", (int)g->rq.prompt_tokens,
			 "completion_tokens", (int)g->rq.generated, "total_tokens",
			 (int)(g->rq.prompt_tokens + g->rq.generated), "prompt_tokens_details",
			 "cached_tokens", (int)g->rq.cached_tokens);
}

/* one SSE event for token `text` (NULL: the final chunk with finish_reason) */
static char *sn_chunk(const struct sn_gen *g, const char *text, bool usage_only)
{
	const char *model = sn_model_name(g);
	json_t *o, *choice;
	char *js, *ev = NULL;

	if (usage_only) {
		o = json_pack("{s:s, s:s, s:i, s:s, s:[], s:o}", "id", g->id, "object",
			      g->chat ? "chat.completion.chunk" : "text_completion", "created", 0,
			      "model", model, "choices", "usage", sn_usage(g));
	} else {
		if (g->chat)
			choice = text ? json_pack("{s:i, s:{s:s}, s:n}", "index", 0, "delta",
						  "content", text, "finish_reason")
				      : json_pack("{s:i, s:{}, s:s}", "index", 0, "delta",
						  "finish_reason", "length");
		else
			choice = text ? json_pack("{s:i, s:s, s:n}", "index", 0, "text", text,
						  "finish_reason")
				      : json_pack("{s:i, s:s, s:s}", "index", 0, "text", "",
						  "finish_reason", "length");
		o = json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", g->id, "object",
			      g->chat ? "chat.completion.chunk" : "text_completion", "created", 0,
			      "model", model, "choices", choice);
	}
	js = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (js && asprintf(&ev, "data: %s\n\n", js) < 0)
		ev = NULL;
	free(js);
	return ev;
}

static ssize_t sn_stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sn_gen *g = cls;
	const char *text;
	char *ev = NULL, *ev2 = NULL;
	size_t n;

	if (g->out_off < g->out_len) {
		n = g->out_len - g->out_off;
		if (n > max)
			n = max;
		memcpy(buf, g->out + g->out_off, n);
		g->out_off += n;
		return n;
	}
	switch (g->state) {
	case SN_PREFILL:
		sim__sleep_until(sim__prefill_end(&sn_sim, &g->rq));
		sim__first_token(&sn_sim, &g->rq);
		g->t_next = g->rq.t_first;
		g->state = SN_TOKENS;
		/* fallthrough */
	case SN_TOKENS:
		if (g->next < g->rq.max_tokens) {
			if (g->next > 0) {
				g->t_next += sim__decode_ms(&sn_sim, &g->rq);
				sim__sleep_until(g->t_next);
			}
			if (sn_next_token(g, &text))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			ev = sn_chunk(g, text, false);
		} else {
			ev = sn_chunk(g, NULL, false);
			if (ev && g->include_usage)
				ev2 = sn_chunk(g, NULL, true);
			if (ev && (!g->include_usage || ev2)) {
				char *all = NULL;

				if (asprintf(&all, "%s%sdata: [DONE]\n\n", ev, ev2 ? ev2 : "") < 0)
					all = NULL;
				free(ev);
				ev = all;
			}
			free(ev2);
			sn_gen_finish(g);
			g->state = SN_DONE;
		}
		if (!ev)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		free(g->out);
		g->out = ev;
		g->out_len = strlen(ev);
		g->out_off = 0;
		return sn_stream_cb(cls, pos, buf, max);
	default:
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
}

static void sn_stream_free(void *cls)
{
	sn_gen_free(cls);
}

/* the whole answer at once (the connection's thread sleeps through it) */
static char *sn_run_blocking(struct sn_gen *g)
{
	const char *model = sn_model_name(g), *text;
	json_t *o, *choice;
	char *js;

	sim__sleep_until(sim__prefill_end(&sn_sim, &g->rq));
	sim__first_token(&sn_sim, &g->rq);
	g->t_next = g->rq.t_first;
	while (g->next < g->rq.max_tokens) {
		if (g->next > 0) {
			g->t_next += sim__decode_ms(&sn_sim, &g->rq);
			sim__sleep_until(g->t_next);
		}
		if (sn_next_token(g, &text))
			break;
	}
	sn_gen_finish(g);
	if (g->chat)
		choice = json_pack("{s:i, s:{s:s, s:s}, s:s}", "index", 0, "message", "role",
				   "assistant", "content", g->reply ? g->reply : "",
				   "finish_reason", "length");
	else
		choice = json_pack("{s:i, s:s, s:s}", "index", 0, "text", g->reply ? g->reply : "",
				   "finish_reason", "length");
	o = json_pack("{s:s, s:s, s:i, s:s, s:[o], s:o}", "id", g->id, "object",
		      g->chat ? "chat.completion" : "text_completion", "created", 0, "model", model,
		      "choices", choice, "usage", sn_usage(g));
	js = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return js;
}

static void sn_client_addr(struct MHD_Connection *c, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	const char *xff = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For");
	struct in6_addr a6;
	struct in_addr a4;

	/* behind an L7 proxy (the bench's HAProxy, option forwardfor) the
	 * client is the one it names: its sessions then key their jitter
	 * and prefix cache as they do through an L4 balancer, so the
	 * comparison runs the same requests. A lab tool: trusted as sent */
	if (xff) {
		char first[INET6_ADDRSTRLEN];
		size_t n = strcspn(xff, ", ");

		if (n && n < sizeof(first)) {
			memcpy(first, xff, n);
			first[n] = '\0';
			/* written as the socket's address would be */
			if (inet_pton(AF_INET, first, &a4) == 1 &&
			    inet_ntop(AF_INET, &a4, out, len))
				return;
			if (inet_pton(AF_INET6, first, &a6) == 1 &&
			    inet_ntop(AF_INET6, &a6, out, len))
				return;
		}
	}
	snprintf(out, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, len);
}

static enum MHD_Result sn_generate(struct MHD_Connection *c, const char *body, size_t len,
				   bool chat)
{
	const char *why = "invalid request", *sid, *model_name;
	char client[INET6_ADDRSTRLEN], hdr[32];
	struct MHD_Response *resp = NULL;
	struct sn_gen *g = NULL;
	json_error_t jerr;
	json_t *req, *v;
	enum MHD_Result ret;
	bool stream;
	int err;

	req = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(req)) {
		char m[200];

		snprintf(m, sizeof(m), "request body is not a JSON object%s%s", req ? "" : ": ",
			 req ? "" : jerr.text);
		json_decref(req);
		return sn_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", m);
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		goto nomem;
	g->chat = chat;
	v = json_object_get(req, "model");
	if (v && !json_is_string(v)) {
		why = "\"model\" must be a string";
		goto bad;
	}
	model_name = v ? json_string_value(v) : sn_sim.models[0].name;
	g->rq.model = sim__model_find(&sn_sim, model_name);
	if (g->rq.model < 0 && sim__lora_route(&sn_sim, model_name, &g->rq)) {
		char m[SIM_MODEL_LEN + 40];

		/* vLLM's answer, also for an adapter not loaded (yet) */
		snprintf(m, sizeof(m), "The model `%.*s` does not exist.", SIM_MODEL_LEN,
			 model_name);
		json_decref(req);
		free(g);
		return sn_error(c, MHD_HTTP_NOT_FOUND, "NotFoundError", m);
	}
	v = json_object_get(req, "max_completion_tokens");
	if (!v)
		v = json_object_get(req, "max_tokens");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > SN_MAX_OUT_TOKENS) {
			why = "\"max_tokens\" must be an integer in [1, 65536]";
			goto bad;
		}
		g->rq.max_tokens = json_integer_value(v);
	}
	v = json_object_get(req, "stream");
	if (v && !json_is_boolean(v)) {
		why = "\"stream\" must be true or false";
		goto bad;
	}
	g->stream = json_is_true(v);
	v = json_object_get(json_object_get(req, "stream_options"), "include_usage");
	g->include_usage = json_is_true(v);
	err = sn_render_prompt(req, chat, &g->prompt, &g->rq.prompt_len, &why);
	if (err == -ENOMEM)
		goto nomem;
	if (err)
		goto bad;
	g->rq.prompt = g->prompt;

	/* session: client address + conversation id (header, else "user") */
	sn_client_addr(c, client, sizeof(client));
	sid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Session-Id");
	v = json_object_get(req, "user");
	if (!sid && json_is_string(v))
		sid = json_string_value(v);
	snprintf(g->rq.session, sizeof(g->rq.session), "%s|%s|%s", client, sid ? sid : "",
		 sn_model_name(g));
	json_decref(req);
	req = NULL;

	sim__req_init(&sn_sim, &g->rq);
	snprintf(g->id, sizeof(g->id), "%s-%016llx", chat ? "chatcmpl" : "cmpl",
		 (unsigned long long)g->rq.content_hash);
	g->finished = true; /* nothing to give back until admitted */
	err = sim__admit(&sn_sim, &g->rq);
	if (err) {
		sn_gen_free(g);
		if (err == -EBUSY)
			return sn_error(c, MHD_HTTP_TOO_MANY_REQUESTS, "RateLimitError",
					"the waiting queue is full");
		return sn_error(c, MHD_HTTP_INSUFFICIENT_STORAGE, "ServerError",
				"the model does not fit this node's memory");
	}
	g->finished = false;

	if (g->stream) {
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sn_stream_cb, g,
							 sn_stream_free);
		if (!resp) {
			sn_gen_free(g);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "text/event-stream");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
	} else {
		char *js = sn_run_blocking(g);

		if (!js) {
			sn_gen_free(g);
			return MHD_NO;
		}
		resp = MHD_create_response_from_buffer(strlen(js), js, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(js);
			sn_gen_free(g);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "application/json");
	}
	/* what the latency model did, for tests and the benchmark */
	MHD_add_response_header(resp, "X-Aibl-Node", sn_node);
	snprintf(hdr, sizeof(hdr), "%u", g->rq.prompt_tokens);
	MHD_add_response_header(resp, "X-Simnode-Prompt-Tokens", hdr);
	snprintf(hdr, sizeof(hdr), "%u", g->rq.cached_tokens);
	MHD_add_response_header(resp, "X-Simnode-Cached-Tokens", hdr);
	MHD_add_response_header(resp, "X-Simnode-Cold-Start", g->rq.cold ? "1" : "0");
	snprintf(hdr, sizeof(hdr), "%.3f", g->rq.t_admitted - g->rq.t_arrival);
	MHD_add_response_header(resp, "X-Simnode-Queue-Ms", hdr);
	/* a stream's generator belongs to its response from here: where the
	 * queueing failed (the client gone), destroying the response frees it
	 * (sn_stream_free) */
	stream = g->stream;
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	if (!stream)
		sn_gen_free(g);
	return ret;

bad:
	json_decref(req);
	free(g ? g->prompt : NULL);
	free(g);
	return sn_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", why);
nomem:
	json_decref(req);
	if (g)
		free(g->prompt);
	free(g);
	return sn_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "ServerError", "out of memory");
}

/* an adapter: vLLM's answers (plain text on success) */
static enum MHD_Result sn_lora_op(struct MHD_Connection *c, json_t *req, const char *name,
				  bool load)
{
	const char *path = json_string_value(json_object_get(req, "lora_path"));
	const char *parent = json_string_value(json_object_get(req, "base_model_name"));
	char msg[2 * SIM_MODEL_LEN + 64];
	unsigned int status = MHD_HTTP_BAD_REQUEST;
	const char *type = "InvalidUserInput";
	int err;

	if (load && (!path || !*path)) {
		snprintf(msg, sizeof(msg), "Both 'lora_name' and 'lora_path' must be provided.");
		return sn_error(c, status, type, msg);
	}
	err = load ? sim__lora_load(&sn_sim, name, path, parent) : sim__lora_unload(&sn_sim, name);
	switch (err) {
	case 0:
		snprintf(msg, sizeof(msg), "Success: LoRA adapter '%s' %s successfully.", name,
			 load ? "added" : "removed");
		return sn_reply(c, MHD_HTTP_OK, "text/plain", strdup(msg));
	case -EEXIST:
		snprintf(msg, sizeof(msg), "The lora adapter '%s' has already been loaded.", name);
		break;
	case -EBUSY:
		snprintf(msg, sizeof(msg), "The lora adapter '%s' is being loaded.", name);
		break;
	case -ENOSPC:
		snprintf(msg, sizeof(msg), "no room for adapter '%s': %d names already used", name,
			 SIM_MAX_LORAS);
		break;
	case -EINVAL:
		snprintf(msg, sizeof(msg), "adapter name '%s' empty, too long or with a ','", name);
		break;
	default: /* -ENOENT */
		status = MHD_HTTP_NOT_FOUND;
		type = "NotFoundError";
		if (load)
			snprintf(msg, sizeof(msg), "base model '%s' is not served here",
				 parent ? parent : "");
		else
			snprintf(msg, sizeof(msg), "The lora adapter '%s' cannot be found.", name);
	}
	return sn_error(c, status, type, msg);
}

/*
 * POST /v1/load_lora_adapter and /v1/unload_lora_adapter with
 * {"lora_name": NAME, "lora_path": PATH}: vLLM's runtime adapter API (with
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING). A NAME from --models loads or unloads
 * that base model instead (an operator moving models, simnode only).
 */
static enum MHD_Result sn_model_op(struct MHD_Connection *c, const char *body, size_t len,
				   bool load)
{
	json_t *req = json_loadb(body, len, 0, NULL);
	const char *name = req ? json_string_value(json_object_get(req, "lora_name")) : NULL;
	int i = name ? sim__model_find(&sn_sim, name) : -1, err;
	char msg[SIM_MODEL_LEN + 64];
	enum MHD_Result ret;

	if (!name) {
		json_decref(req);
		return sn_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error",
				"a JSON object with \"lora_name\" is required");
	}
	if (i < 0) {
		ret = sn_lora_op(c, req, name, load);
		json_decref(req);
		return ret;
	}
	err = load ? sim__model_load(&sn_sim, i) : sim__model_unload(&sn_sim, i);
	snprintf(msg, sizeof(msg), "%s %s%s\n", load ? "loaded" : "unloaded", name,
		 err == -E2BIG	  ? ": larger than the node's memory"
		 : err == -ENOENT ? ": was not loaded"
		 : err == -EBUSY  ? ": still loading"
				  : "");
	json_decref(req);
	if (err)
		return sn_error(c, err == -E2BIG ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_CONFLICT,
				"invalid_request_error", msg);
	return sn_reply(c, MHD_HTTP_OK, "text/plain", strdup(msg));
}

static enum MHD_Result sn_handler(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_body *cc = *con_cls;
	bool post = !strcmp(method, "POST");

	/*
	 * Every request is answered on the handler's second call at the
	 * earliest: libmicrohttpd 0.9.75 closes the connection after a
	 * response queued on the first call, and kept-alive clients (the
	 * path benchmark, real OpenAI clients) would reconnect every time.
	 */
	if (!cc) {
		cc = calloc(1, sizeof(*cc));
		if (!cc)
			return MHD_NO;
		*con_cls = cc;
		return MHD_YES;
	}
	if (post && *upload_size) {
		if (http_body__feed(cc, upload, *upload_size, SN_MAX_BODY))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (post) {
		if (cc->too_big)
			return sn_error(c, 413 /* content too large */, "invalid_request_error",
					"request body over 4 MiB");
		if (!strcmp(url, "/v1/completions"))
			return sn_generate(c, http_body__str(cc), cc->len, false);
		if (!strcmp(url, "/v1/chat/completions"))
			return sn_generate(c, http_body__str(cc), cc->len, true);
		if (!strcmp(url, "/v1/load_lora_adapter"))
			return sn_model_op(c, http_body__str(cc), cc->len, true);
		if (!strcmp(url, "/v1/unload_lora_adapter"))
			return sn_model_op(c, http_body__str(cc), cc->len, false);
		return sn_error(c, MHD_HTTP_NOT_FOUND, "NotFoundError", "no such endpoint");
	}
	if (strcmp(method, "GET"))
		return sn_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
				"method not allowed");
	if (!strcmp(url, "/metrics"))
		return sn_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
				sim__metrics(&sn_sim));
	if (!strcmp(url, "/v1/models"))
		return sn_reply(c, MHD_HTTP_OK, "application/json", sim__models_json(&sn_sim));
	if (!strcmp(url, "/health"))
		return sn_reply(c, MHD_HTTP_OK, "text/plain", strdup("ok\n"));
	if (!strcmp(url, "/props") && sn_sim.cfg.llamacpp)
		return sn_reply(c, MHD_HTTP_OK, "application/json", sim__props(&sn_sim));
	return sn_error(c, MHD_HTTP_NOT_FOUND, "NotFoundError", "no such endpoint");
}

int main(int argc, char **argv)
{
	struct sn_opts o = {};
	struct sim_cfg *cfg = &o.cfg;
	struct MHD_Daemon *d = NULL;
	sigset_t stop_sigs;
	char msg[256];
	int err = 0, sig;

	log_set_ident("aibl-simnode", false);
	if (gethostname(sn_node, sizeof(sn_node)))
		snprintf(sn_node, sizeof(sn_node), "simnode");
	sn_node[sizeof(sn_node) - 1] = '\0';
	err = cliopt__parse(&sn_prog, argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 2;
	if (o.verbose)
		log_set_level(LOG_LVL_DEBUG);
	err = sim__init(&sn_sim, cfg, o.models, o.resident, msg, sizeof(msg));
	if (err) {
		pr_err("%s\n", msg[0] ? msg : strerror(-err));
		return 2;
	}
	/* SIGTERM and SIGINT for the main thread's sigwait() alone: MHD's
	 * threads inherit the mask. Caught by a handler, either could land on
	 * a connection thread while main slept in pause(), and the node then
	 * never stopped (the lab killed it after 5 s) */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
				 MHD_USE_ERROR_LOG |
				 (o.listen.ss.ss_family == AF_INET6 ? MHD_USE_DUAL_STACK : 0),
			     0, NULL, NULL, sn_handler, NULL, MHD_OPTION_SOCK_ADDR, &o.listen.ss,
			     MHD_OPTION_NOTIFY_COMPLETED, http_body__completed, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_END);
	if (!d) {
		pr_err("cannot listen on %s: %s\n", o.listen.spec, strerror(errno));
		err = 1;
		goto out;
	}
	pr_info("listening on %s: %d models, %u slots, cache %llu tokens, %s\n", o.listen.spec,
		sn_sim.nmodels, cfg->slots, (unsigned long long)cfg->cache_tokens,
		cfg->cpu ? "CPU only" : "accelerated");
	while (sigwait(&stop_sigs, &sig))
		;
	pr_info("stopping (%s)\n", strsignal(sig));
	/* MHD waits for every connection's thread: end their waits first */
	sim__stop(&sn_sim);
	MHD_stop_daemon(d);
out:
	sim__fini(&sn_sim);
	return err ? 1 : 0;
}
