// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibld: the aibl controller.
 *
 *   aibld --config FILE            run in the foreground
 *   aibld --check --config FILE    validate a configuration
 *   aibld --teardown --config FILE detach the XDP program, remove the pins
 *
 * The loop: poll every node (bounded by poll_timeout_ms), recompute and
 * write what changed, sleep out the poll interval while watching signals
 * (SIGTERM/SIGINT stop, SIGHUP reloads), API wake-ups (drain) and netlink
 * events. Exiting leaves program, maps and attachment in place: the data
 * plane forwards on without us, and the next aibld adopts it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <openssl/crypto.h>
#include "aibld.h"
#include "bgp.h"
#include "cluster.h"
#include "dataplane.h"
#include "bpfutil.h"
#include "cliopt.h"
#include "log.h"

struct aibld_opts {
	const char *path;
	bool check, down, verbose;
};

static const struct cliopt aibld_rows[] = {
    CLIOPT("config", PATH, struct aibld_opts, path, .short_name = 'c', .required = true,
	   .metavar = "FILE", .help = "configuration (YAML)"),
    CLIOPT("check", FLAG, struct aibld_opts, check, .help = "validate the configuration, exit"),
    CLIOPT("teardown", FLAG, struct aibld_opts, down,
	   .help = "detach the XDP program, remove its pins, exit"),
    CLIOPT("verbose", FLAG, struct aibld_opts, verbose, .short_name = 'v',
	   .help = "debug logging, including libbpf's log"),
};

static const struct cliopt_prog aibld_prog = {
    .name = "aibld",
    .synopsis = "Usage: aibld --config FILE [-v]       run the controller (foreground)\n"
		"       aibld --check --config FILE    validate a configuration\n"
		"       aibld --teardown --config FILE detach the program, remove its pins",
    .opts = aibld_rows,
    .nopts = CLIOPT_NOPTS(aibld_rows),
};

/* key and token files of cfg into d (or only checked when d is NULL) */
static int load_secrets(const struct config *cfg, struct aibl_key *key, bool *have_key, char *token,
			size_t toklen)
{
	struct aibl_key t;
	char msg[256];
	int err;

	*have_key = false;
	token[0] = 0;
	if (cfg->agent_key_file[0]) {
		err = aibl_key__load(cfg->agent_key_file, key, msg, sizeof(msg));
		if (err) {
			pr_err("agent_key_file: %s", msg);
			return err;
		}
		*have_key = true;
	}
	if (cfg->api_token_file[0]) {
		err = aibl_key__load(cfg->api_token_file, &t, msg, sizeof(msg));
		if (err) {
			pr_err("api_token_file: %s", msg);
			return err;
		}
		if (t.len >= toklen || memchr(t.key, 0, t.len) || memchr(t.key, '\n', t.len)) {
			pr_err("api_token_file: the token must be one line of text");
			return -EINVAL;
		}
		memcpy(token, t.key, t.len);
		token[t.len] = 0;
	}
	return 0;
}

static int teardown(const struct config *cfg)
{
	int ifindex = if_nametoindex(cfg->interface), err;

	if (ifindex) {
		err = dp__detach(ifindex, false);
		if (err && err != -ENOENT)
			return err;
		pr_info("detached from %s", cfg->interface);
	} else {
		pr_warn("interface %s not found: nothing to detach", cfg->interface);
	}
	err = dp__teardown(cfg->bpffs);
	if (!err)
		pr_info("removed pins under %s", cfg->bpffs);
	return err;
}

struct daemon {
	struct aibld d;
	struct nl *nl;
	struct api *api;
	int sig_fd;
	int attached_ifindex; /* where the program was last attached */
	int attach_err;	      /* the last re-attach's error, said once; 0 none */
	bool nl_stale;	      /* a refresh failed part way: read again every loop */
};

static int reload(struct daemon *dm)
{
	struct aibld *d = &dm->d;
	char err[CFG_ERR_LEN], token[AIBLD_TOKEN_LEN];
	struct cfg_bgp old_bgp = d->cfg.bgp;
	struct api *api = NULL;
	struct aibl_key key;
	struct config cfg;
	bool have_key;
	int ret;

	ret = config__load(&cfg, d->cfg_path, err, sizeof(err));
	if (ret) {
		pr_err("reload refused, running config kept: %s", err);
		goto refused;
	}
	if (strcmp(cfg.bpffs, d->cfg.bpffs) || strcmp(cfg.interface, d->cfg.interface) ||
	    cfg.xdp_mode != d->cfg.xdp_mode || cfg.map_conns != d->cfg.map_conns ||
	    cfg.map_pins != d->cfg.map_pins) {
		pr_err("reload refused, running config kept: 'bpffs', 'interface', 'xdp_mode' and "
		       "'maps' change only with a restart");
		ret = -EINVAL;
		goto refused;
	}
	/* the cluster took its endpoint, keys, name and lease when it started:
	 * a renamed planner would renew a lease nobody elects with, a longer
	 * lease would still expire at the old TTL, and a group left or joined
	 * on the fly would announce tables no plan made */
	if (strcmp(cfg.etcd.endpoint, d->cfg.etcd.endpoint) ||
	    strcmp(cfg.etcd.prefix, d->cfg.etcd.prefix) ||
	    strcmp(cfg.etcd.name, d->cfg.etcd.name) ||
	    strcmp(cfg.etcd.api_url, d->cfg.etcd.api_url) ||
	    cfg.etcd.lease_ttl_s != d->cfg.etcd.lease_ttl_s) {
		pr_err("reload refused, running config kept: 'etcd' (but cost_step and "
		       "compact_interval_s) "
		       "changes only "
		       "with a restart");
		ret = -EINVAL;
		goto refused;
	}
	ret = load_secrets(&cfg, &key, &have_key, token, sizeof(token));
	if (ret) {
		pr_err("reload refused, running config kept");
		goto refused;
	}
	if (strcmp(cfg.status_listen, d->cfg.status_listen)) {
		/* the new listener first: if it cannot bind nothing changes */
		char old[CFG_ADDR_LEN];

		memcpy(old, d->cfg.status_listen, sizeof(old));
		memcpy(d->cfg.status_listen, cfg.status_listen, sizeof(old));
		ret = api__start(d, token, &api);
		memcpy(d->cfg.status_listen, old, sizeof(old));
		if (ret) {
			pr_err("reload refused, running config kept");
			goto refused;
		}
	}
	pthread_mutex_lock(&d->lock);
	ret = aibld__apply_config(d, &cfg);
	if (ret) {
		pthread_mutex_unlock(&d->lock);
		api__stop(api);
		pr_err("reload refused, running config kept: %s", strerror(-ret));
		goto refused;
	}
	d->key = key;
	d->have_key = have_key;
	/* a kept listener takes the new token now; a new one has it already,
	 * and the old one keeps its own until it stops below */
	if (!api)
		api__set_token(dm->api, token);
	netlink__refresh(dm->nl, d);
	aibld__write_globals(d);
	ret = aibld__recompute(d, false);
	if (ret)
		pr_warn("after reload: %s", strerror(-ret));
	d->st.reloads_ok++;
	pthread_mutex_unlock(&d->lock);
	if (api) {
		api__stop(dm->api);
		dm->api = api;
	}
	cluster__bgp_changed(d, &old_bgp);
	pr_info("reloaded %s: %d services, %d nodes", d->cfg_path, d->cfg.nservices, d->cfg.nnodes);
	OPENSSL_cleanse(token, sizeof(token)); /* the listeners hold their copies */
	return 0;
refused:
	OPENSSL_cleanse(token, sizeof(token));
	config__free(&cfg);
	d->st.reloads_failed++;
	return ret;
}

/* what the globals take from the interface */
struct if_facts {
	int ifindex;
	__u8 if_mac[6], gw_mac[6];
	union aibl_addr a4, a6;
};

static void if_facts_of(const struct aibld *d, struct if_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->ifindex = d->ifindex;
	f->a4 = d->if_addr4;
	f->a6 = d->if_addr6;
	memcpy(f->if_mac, d->if_mac, 6);
	memcpy(f->gw_mac, d->gw_mac, 6);
}

/*
 * Netlink said something changed: re-read the facts; an interface that
 * came back with a new index (deleted and re-created) gets the program
 * again. A read that failed part way (a dump interrupted while links
 * change) and an attach that failed are tried again at every loop, as no
 * other event may come: the new index is learnt before the dumps that can
 * fail. An interface that is gone is not: its return is an event. Caller
 * holds the lock.
 */
static void interface_changed(struct daemon *dm)
{
	struct aibld *d = &dm->d;
	struct if_facts was, now;
	int err;

	if_facts_of(d, &was);
	err = netlink__refresh(dm->nl, d);
	dm->nl_stale = err && err != -ENODEV;
	if (err)
		return;
	if_facts_of(d, &now);
	if (d->ifindex != dm->attached_ifindex) {
		struct dp_attach_opts ao = {
		    .mode =
			d->cfg.xdp_mode == CFG_XDP_GENERIC ? DP_ATTACH_GENERIC : DP_ATTACH_NATIVE,
		};

		err = dp__attach(d->dp, d->ifindex, &ao);
		if (err && err != dm->attach_err)
			pr_err("re-attach to %s: %s (tried again every loop)", d->cfg.interface,
			       strerror(-err));
		if (!err) {
			pr_info("re-attached to %s (ifindex %d)", d->cfg.interface, d->ifindex);
			dm->attached_ifindex = d->ifindex;
		}
		dm->attach_err = err;
	}
	/* a neighbour or route event elsewhere changes none of them: no
	 * globals write, whose filter rebuilds walk every pin and whose
	 * epoch bump voids the flow cache (the recompute that follows still
	 * resolves the nodes' next hops) */
	if (memcmp(&was, &now, sizeof(now)))
		aibld__write_globals(d);
}

/* drain signalfd; returns 1 to stop */
static int handle_signals(struct daemon *dm)
{
	struct signalfd_siginfo si;

	while (read(dm->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			pr_info("signal %d: exiting, the data plane keeps forwarding",
				si.ssi_signo);
			return 1;
		case SIGHUP:
			pr_info("SIGHUP: reloading %s", dm->d.cfg_path);
			reload(dm);
			break;
		}
	}
	return 0;
}

static int run(struct daemon *dm, bool *stop)
{
	struct aibld *d = &dm->d;
	bool asked = false;
	__u64 next = 0;

	while (!*stop) {
		__u64 t0 = clock_mono_ms(), now, early;
		double ms;
		int err;

		d->round_t0_ms = t0;
		d->round_early = asked;
		asked = false;
		poller__run(d);
		pthread_mutex_lock(&d->lock);
		err = dp__repin(d->dp);
		if (err > 0)
			pr_warn("pins under %s were removed: %d re-created", d->dp->pin_dir, err);
		/* taken off its interface (ip link set ... xdp off, another
		 * tool): put back, as a moved interface is. Left off, nothing
		 * was balanced, and in cluster mode the balancer stayed fenced
		 * until restarted */
		if (dm->attached_ifindex > 0 && dm->attached_ifindex == d->ifindex &&
		    !dp__attached(d->dp, d->ifindex)) {
			pr_warn("the XDP program is no longer attached to %s: attaching it again",
				d->cfg.interface);
			dm->attached_ifindex = 0;
		}
		if (netlink__events(dm->nl) || dm->nl_stale || dm->attached_ifindex != d->ifindex)
			interface_changed(dm);
		err = aibld__recompute(d, false);
		if (err)
			pr_warn("recompute: %s", strerror(-err));
		now = clock_mono_ms();
		ms = (double)(now - t0);
		d->st.loop_ms = ms;
		if (ms > d->st.loop_ms_max)
			d->st.loop_ms_max = ms;
		d->st.loops++;
		pthread_mutex_unlock(&d->lock);
		cluster__tick(d);

		/* at least one look at signals and wake-ups per loop, even when
		 * the poll round took longer than the interval (silent nodes) */
		next = t0 + d->cfg.poll_interval_ms;
		early =
		    t0 + (d->cfg.poll_interval_ms / 10 > 10 ? d->cfg.poll_interval_ms / 10 : 10);
		now = clock_mono_ms();
		do {
			struct pollfd pf[5] = {
			    {.fd = dm->sig_fd, .events = POLLIN},
			    {.fd = d->wake_fd, .events = POLLIN},
			    {.fd = netlink__fd(dm->nl), .events = POLLIN},
			    {.fd = cluster__fd(d), .events = POLLIN}, /* -1: ignored */
			    {.fd = d->poll_fd, .events = POLLIN},
			};
			__u64 v;

			if (poll(pf, 5, now < next ? (int)(next - now) : 0) < 0 && errno != EINTR)
				return -errno;
			/* an agent saw its node change (a model loaded or
			 * unloaded): the next round comes now, but no sooner
			 * than a tenth of the interval after the last, so a
			 * flood of asks costs at most ten rounds an interval */
			if (pf[4].revents && read(d->poll_fd, &v, sizeof(v)) == sizeof(v) &&
			    early < next) {
				next = early;
				asked = true;
				__atomic_fetch_add(&d->st.polls_early, 1, __ATOMIC_RELAXED);
			}
			if (pf[0].revents && handle_signals(dm))
				*stop = true;
			if (pf[1].revents && read(d->wake_fd, &v, sizeof(v)) == sizeof(v)) {
				pthread_mutex_lock(&d->lock);
				aibld__recompute(d, false);
				pthread_mutex_unlock(&d->lock);
			}
			if (pf[2].revents && netlink__events(dm->nl)) {
				pthread_mutex_lock(&d->lock);
				interface_changed(dm);
				aibld__recompute(d, false);
				pthread_mutex_unlock(&d->lock);
			}
			/* the planner key is gone: elect now, not at the next loop */
			if (pf[3].revents)
				cluster__woken(d);
			now = clock_mono_ms();
		} while (!*stop && now < next);
	}
	return 0;
}

static int daemon_main(const char *path)
{
	struct daemon dm = {.sig_fd = -1};
	struct aibld *d = &dm.d;
	struct dp_attach_opts ao = {};
	struct dp_opts dopts = {};
	struct dp *dp = NULL;
	char err[CFG_ERR_LEN], token[AIBLD_TOKEN_LEN] = "";
	struct config cfg;
	bool stop = false, inited = false;
	sigset_t mask;
	int ret;

	ret = config__load(&cfg, path, err, sizeof(err));
	if (ret) {
		pr_err("%s", err);
		return ret;
	}
	snprintf(d->cfg_path, sizeof(d->cfg_path), "%s", path);
	d->wake_fd = d->poll_fd = -1;
	ret = load_secrets(&cfg, &d->key, &d->have_key, token, sizeof(token));
	if (ret)
		goto out;

	/* signals are read synchronously; blocked before any thread starts */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	dm.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (dm.sig_fd < 0) {
		ret = -errno;
		pr_err("signalfd: %s", strerror(-ret));
		goto out;
	}
	ret = poller__init();
	if (ret)
		goto out;
	ret = netlink__open(&dm.nl);
	if (ret)
		goto out;

	dopts.pin_dir = cfg.bpffs;
	dopts.sizes.max_conns = cfg.map_conns;
	dopts.sizes.max_pins = cfg.map_pins;
	ret = dp__open_load(&dopts, &dp);
	if (ret)
		goto out;
	if (dp->sizes.max_conns != cfg.map_conns || dp->sizes.max_pins != cfg.map_pins)
		pr_warn(
		    "maps.conns %u and maps.pins %u configured, the pinned maps hold %u and %u: "
		    "kept, so no flow is lost; aibld --teardown and a start resize them",
		    cfg.map_conns, cfg.map_pins, dp->sizes.max_conns, dp->sizes.max_pins);
	pr_info("data plane loaded, maps pinned under %s%s", cfg.bpffs,
		dp->reused ? " (reusing the existing maps)" : "");
	ret = aibld__init(d, &cfg, dp);
	inited = true;
	if (ret)
		goto out;
	/* after aibld__init, which starts them at -1 */
	d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->poll_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->wake_fd < 0 || d->poll_fd < 0) {
		ret = -errno;
		pr_err("eventfd: %s", strerror(-ret));
		goto out;
	}
	ret = netlink__refresh(dm.nl, d);
	if (ret)
		goto out;
	ao.mode = d->cfg.xdp_mode == CFG_XDP_GENERIC ? DP_ATTACH_GENERIC : DP_ATTACH_NATIVE;
	ret = aibld__write_globals(d);
	if (ret) {
		pr_err("write aibl_globals: %s", strerror(-ret));
		goto out;
	}
	/* what a crashed aibld left in BIRD's include is not announced by a
	 * BIRD (re)started meanwhile: nothing until the cluster holds the
	 * plan's tables (cluster__init writes it again once BIRD answers) */
	if (d->cfg.bgp.include[0])
		bgp__withdraw(&d->cfg.bgp);
	/* tables before the program: a fresh attach finds them filled. One
	 * round of polls first so nodes that are down are not given slots. */
	poller__run(d);
	pthread_mutex_lock(&d->lock);
	ret = aibld__recompute(d, false);
	pthread_mutex_unlock(&d->lock);
	if (ret)
		pr_warn("first recompute: %s", strerror(-ret));
	ret = dp__attach(dp, d->ifindex, &ao);
	if (ret)
		goto out;
	dm.attached_ifindex = d->ifindex;
	pr_info("attached to %s (ifindex %d, %s XDP)", d->cfg.interface, d->ifindex,
		ao.mode == DP_ATTACH_GENERIC ? "generic" : "native");
	ret = api__start(d, token, &dm.api);
	OPENSSL_cleanse(token, sizeof(token)); /* the listener holds its copy */
	if (ret)
		goto out;
	ret = cluster__init(d);
	if (ret) {
		pr_err("cluster: %s", strerror(-ret));
		goto out;
	}
	ret = run(&dm, &stop);
out:
	api__stop(dm.api);
	cluster__fini(d);
	if (inited)
		aibld__fini(d);
	else
		config__free(&cfg);
	dp__close(dp);
	netlink__close(dm.nl);
	poller__fini();
	if (dm.sig_fd >= 0)
		close(dm.sig_fd);
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	if (d->poll_fd >= 0)
		close(d->poll_fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct aibld_opts o = {};
	char err[CFG_ERR_LEN];
	struct config cfg;
	int ret;

	ret = cliopt__parse(&aibld_prog, argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (o.check && o.down) {
		fprintf(stderr, "aibld: --check and --teardown exclude each other\n");
		return 2;
	}
	log_set_ident("aibld", !o.check);
	log_set_level(o.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	log_setup_libbpf(o.verbose);
	if (o.check || o.down) {
		if (config__load(&cfg, o.path, err, sizeof(err))) {
			pr_err("%s", err);
			return 1;
		}
		ret = 0;
		if (o.check) {
			struct aibl_key key;
			char token[AIBLD_TOKEN_LEN];
			bool have_key;

			/* the key and token files as a start would read them:
			 * an ok here is a start that gets past them */
			ret = load_secrets(&cfg, &key, &have_key, token, sizeof(token));
			OPENSSL_cleanse(&key, sizeof(key));
			OPENSSL_cleanse(token, sizeof(token));
			if (!ret)
				printf("%s: ok (%d services, %d nodes)\n", o.path, cfg.nservices,
				       cfg.nnodes);
		} else {
			ret = teardown(&cfg);
		}
		config__free(&cfg);
		return ret ? 1 : 0;
	}
	return daemon_main(o.path) ? 1 : 0;
}
