// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Config parsing: the shipped example, defaults of a minimal file, a table
 * of bad files with the exact message an operator would read, and the keys
 * docs/aibld.md documents equal to the parser's key table.
 */
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "test.h"
#include "../../user/aibld/config.h"

#define MINIMAL                                                                                    \
	"interface: eth0\n"                                                                        \
	"services:\n"                                                                              \
	"  - {name: s, vip: 10.0.0.1, port: 80}\n"                                                 \
	"nodes:\n"                                                                                 \
	"  - {name: a, address: 10.0.1.1}\n"

static int parse(struct config *cfg, const char *text, char *err)
{
	return config__parse(cfg, "t.yaml", text, strlen(text), err, CFG_ERR_LEN);
}

static void example(void)
{
	const char *root = getenv("AIBL_ROOT");
	char path[512], err[CFG_ERR_LEN];
	struct config cfg;
	int k;

	snprintf(path, sizeof(path), "%s/etc/aibl.example.yaml", root ? root : ".");
	if (!ASSERT_OK(config__load(&cfg, path, err, sizeof(err)), err))
		return;
	ASSERT_STREQ(cfg.interface, "eth0", "interface");
	ASSERT_EQ(cfg.nservices, 3, "services");
	ASSERT_EQ(cfg.nnodes, 4, "nodes");
	ASSERT_EQ(cfg.services[0].nnodes, 4, "chat: all nodes");
	ASSERT_EQ(cfg.services[0].accel, AIBL_ACCEL_GPU, "chat accel");
	ASSERT_EQ(cfg.services[0].policy, AIBL_POL_AI, "chat policy");
	ASSERT_EQ(cfg.services[1].nnodes, 2, "embed nodes");
	k = cfg.services[1].nodes[1];
	ASSERT_STREQ(cfg.nodes[k].name, "cpu-1", "embed second node");
	ASSERT_EQ(cfg.services[1].policy, AIBL_POL_LEAST_CONN, "embed policy");
	ASSERT_EQ(cfg.services[2].vip.family, AIBL_AF_INET6, "chat6 v6");
	ASSERT_EQ(cfg.services[2].session_key, AIBL_KEY_FIVE_TUPLE, "five tuple");
	ASSERT_EQ(cfg.nodes[3].accel, AIBL_ACCEL_NONE, "cpu accel");
	ASSERT_EQ(cfg.nodes[3].health_port, 8080, "health port");
	ASSERT_EQ(cfg.nodes[3].nmodels, 1, "static models");
	ASSERT_EQ(cfg.nodes[1].weight, 200, "weight");
	ASSERT_EQ(cfg.hash_seed, 0x6169626c, "hex seed");
	ASSERT_EQ(cfg.max_conn_rate, CFG_CONN_RATE_AUTO, "max_conn_rate: derived");
	config__free(&cfg);
}

static void defaults(void)
{
	struct config cfg;
	char err[CFG_ERR_LEN];

	if (!ASSERT_OK(parse(&cfg, MINIMAL, err), err))
		return;
	ASSERT_EQ(cfg.xdp_mode, CFG_XDP_NATIVE, "xdp_mode");
	ASSERT_EQ(cfg.fwd_mode, AIBL_FWD_IPIP, "forwarding");
	ASSERT_STREQ(cfg.bpffs, AIBL_DEFAULT_BPFFS, "bpffs");
	ASSERT_EQ(cfg.poll_interval_ms, 1000, "poll interval");
	ASSERT_EQ(cfg.poll_timeout_ms, 500, "poll timeout");
	ASSERT_STREQ(cfg.status_listen, "127.0.0.1:7070", "status_listen");
	ASSERT_EQ(cfg.fail_after, 3, "fail_after");
	ASSERT_EQ(cfg.rise_after, 2, "rise_after");
	ASSERT_EQ(cfg.max_conn_rate, CFG_CONN_RATE_AUTO, "rate guard from the table's size");
	ASSERT_EQ(cfg.services[0].proto, IPPROTO_TCP, "proto");
	ASSERT_EQ(cfg.services[0].policy, AIBL_POL_AI, "policy");
	ASSERT_EQ(cfg.services[0].accel, -1, "any accelerator");
	ASSERT_TRUE(cfg.services[0].conntrack, "conntrack");
	ASSERT_EQ(cfg.nodes[0].weight, 100, "node weight");
	ASSERT_EQ(cfg.nodes[0].accel, AIBL_ACCEL_GPU, "node accel");
	ASSERT_EQ(cfg.nodes[0].address.family, AIBL_AF_INET, "node family");
	config__free(&cfg);
	if (!ASSERT_OK(parse(&cfg, MINIMAL "max_conn_rate: 125000\n", err), err))
		return;
	ASSERT_EQ(cfg.max_conn_rate, 125000, "max_conn_rate set");
	ASSERT_EQ(cfg.map_conns, AIBL_MAX_CONNS, "maps.conns default");
	ASSERT_EQ(cfg.map_pins, AIBL_MAX_PINS, "maps.pins default");
	config__free(&cfg);
	if (!ASSERT_OK(parse(&cfg, MINIMAL "maps: {conns: 1048576, pins: 4096}\n", err), err))
		return;
	ASSERT_EQ(cfg.map_conns, 1048576, "maps.conns set");
	ASSERT_EQ(cfg.map_pins, 4096, "maps.pins set");
	config__free(&cfg);
}

/* address and MAC keys arrive parsed: binary, family set, "" leaves them unset */
static void typed_addresses(void)
{
	static const __u8 mac[6] = {0x02, 0, 0, 0, 0xc1, 0x01};
	struct config cfg;
	char err[CFG_ERR_LEN];

	if (!ASSERT_OK(parse(&cfg, MINIMAL, err), err))
		return;
	ASSERT_EQ(cfg.tunnel_source4.family, AIBL_AF_NONE, "tunnel_source4 unset");
	ASSERT_FALSE(cfg.gateway_mac.set, "gateway_mac unset");
	ASSERT_EQ(cfg.nodes[0].address.addr.v4, htonl(0x0a000101), "node address binary");
	ASSERT_STREQ(cfg.nodes[0].address.text, "10.0.1.1", "node address text");
	ASSERT_EQ(cfg.services[0].vip.addr.v4, htonl(0x0a000001), "vip binary");
	config__free(&cfg);
	if (!ASSERT_OK(parse(&cfg,
			     MINIMAL "tunnel_source4: 10.99.0.1\ntunnel_source6: 'fd00:ff::1'\n"
				     "gateway_mac: 02:00:00:00:c1:01\n",
			     err),
		       err))
		return;
	ASSERT_EQ(cfg.tunnel_source4.family, AIBL_AF_INET, "tunnel_source4 family");
	ASSERT_EQ(cfg.tunnel_source4.addr.v4, htonl(0x0a630001), "tunnel_source4 binary");
	ASSERT_EQ(cfg.tunnel_source6.family, AIBL_AF_INET6, "tunnel_source6 family");
	ASSERT_EQ(cfg.tunnel_source6.addr.b[1], 0x00, "tunnel_source6 byte 1");
	ASSERT_EQ(cfg.tunnel_source6.addr.b[3], 0xff, "tunnel_source6 byte 3");
	ASSERT_EQ(cfg.tunnel_source6.addr.b[15], 0x01, "tunnel_source6 last byte");
	ASSERT_TRUE(cfg.gateway_mac.set, "gateway_mac set");
	ASSERT_MEMEQ(cfg.gateway_mac.b, mac, 6, "gateway_mac binary");
	config__free(&cfg);
	if (!ASSERT_OK(parse(&cfg, MINIMAL "tunnel_source4: ''\ngateway_mac: ''\n", err), err))
		return;
	ASSERT_EQ(cfg.tunnel_source4.family, AIBL_AF_NONE, "empty: the interface's address");
	ASSERT_FALSE(cfg.gateway_mac.set, "empty: the gateway's MAC");
	config__free(&cfg);
}

static void nodes_before_services(void)
{
	struct config cfg;
	char err[CFG_ERR_LEN];
	const char *y = "interface: lo\n"
			"nodes:\n"
			"  - name: b\n"
			"    address: 10.0.1.2\n"
			"  - name: a\n"
			"    address: 10.0.1.1\n"
			"    health_port: 8080\n"
			"services:\n"
			"  - name: s\n"
			"    vip: 10.0.0.1\n"
			"    port: 0\n"
			"    proto: udp\n"
			"    nodes: [a]\n";

	if (!ASSERT_OK(parse(&cfg, y, err), err))
		return;
	ASSERT_EQ(cfg.services[0].nnodes, 1, "one node");
	ASSERT_EQ(cfg.services[0].nodes[0], 1, "node a is index 1");
	ASSERT_EQ(cfg.services[0].proto, IPPROTO_UDP, "udp");
	config__free(&cfg);
}

static void bad(void)
{
	static const struct {
		const char *yaml;
		const char *msg;
	} cases[] = {
	    {"", "t.yaml:1: empty configuration"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: b1, lease_ttl_s: 1}\n",
	     "t.yaml:6: 'etcd.lease_ttl_s' 1 is renewed once a loop: it must be at least two of "
	     "'poll_interval_ms' (and of 'poll_timeout_ms'), 1000 and 500"},
	    {"interface: eth0\n"
	     "services:\n"
	     "  - {name: s, vip: 10.0.0.1, port: 53, proto: udp}\n"
	     "nodes:\n"
	     "  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:5: node 'a' has no agent and no TCP service port to check (its services are "
	     "UDP or every port): set 'health_port'"},
	    {"- a\n- b\n", "t.yaml:1: the top level must be a mapping"},
	    {"interface: [eth0\n", "t.yaml:2: YAML syntax error: did not find expected ',' or "
				   "']' while parsing a flow sequence"},
	    {"services: []\nnodes: []\n", "t.yaml:1: missing required key 'interface' in the "
					  "top level"},
	    {MINIMAL "colour: blue\n", "t.yaml:6: unknown key 'colour' in the top level"},
	    {MINIMAL "interface: eth1\n", "t.yaml:6: duplicate key 'interface' in the top "
					  "level"},
	    {MINIMAL "poll_interval_ms: soon\n", "t.yaml:6: 'poll_interval_ms' must be an "
						 "integer from 10 to 3600000, not 'soon'"},
	    {MINIMAL "poll_interval_ms: -5\n", "t.yaml:6: 'poll_interval_ms' must be an "
					       "integer from 10 to 3600000, not '-5'"},
	    {MINIMAL "max_conn_rate: -1\n", "t.yaml:6: 'max_conn_rate' must be an integer "
					    "from 0 to 100000000, not '-1'"},
	    {MINIMAL "max_conn_rate: 1e9\n", "t.yaml:6: 'max_conn_rate' must be an integer "
					     "from 0 to 100000000, not '1e9'"},
	    {MINIMAL "xdp_mode: offload\n", "t.yaml:6: 'xdp_mode' must be one of native, "
					    "generic, not 'offload'"},
	    {MINIMAL "flow_cache: 1\n", "t.yaml:6: 'flow_cache' must be true or false, not '1'"},
	    {MINIMAL "icmp_too_big: maybe\n", "t.yaml:6: 'icmp_too_big' must be true or false, "
					      "not 'maybe'"},
	    {MINIMAL "health: {fail_after: 0}\n", "t.yaml:6: 'fail_after' must be an integer "
						  "from 1 to 100, not '0'"},
	    {MINIMAL "health: {flap: 1}\n", "t.yaml:6: unknown key 'flap' in 'health'"},
	    {MINIMAL "maps: {conns: 10}\n", "t.yaml:6: 'conns' must be an integer from 1024 to "
					    "67108864, not '10'"},
	    {MINIMAL "maps: {ring: 7}\n", "t.yaml:6: unknown key 'ring' in 'maps'"},
	    {MINIMAL "ai: {kv_weight: lots}\n", "t.yaml:6: 'kv_weight' must be a number from 0 "
						"to 100, not 'lots'"},
	    {MINIMAL "ai: {stale_ms: 500}\n",
	     "t.yaml:6: 'ai.stale_ms' 500 is shorter than polls can be apart: it must be 0 or at "
	     "least the longer of 'poll_interval_ms' and 'poll_timeout_ms' (1000, 500) plus "
	     "'poll_timeout_ms'"},
	    {MINIMAL "ai: {temp_soft_c: 95}\n", "t.yaml:6: 'ai.temp_soft_c' must be below "
						"'ai.temp_hard_c'"},
	    {MINIMAL "gateway_mac: 02:00:00\n", "t.yaml:6: 'gateway_mac' is not a MAC address "
						"like 02:00:00:00:00:01: '02:00:00'"},
	    /* sscanf's %x took a sign: each -1 read as ff, the broadcast */
	    {MINIMAL "gateway_mac: '-1:-1:-1:-1:-1:-1'\n",
	     "t.yaml:6: 'gateway_mac' is not a MAC address like 02:00:00:00:00:01: "
	     "'-1:-1:-1:-1:-1:-1'"},
	    {MINIMAL "gateway_mac: ' 2:0:0:0:0:1'\n",
	     "t.yaml:6: 'gateway_mac' is not a MAC "
	     "address like 02:00:00:00:00:01: ' 2:0:0:0:0:1'"},
	    {MINIMAL "gateway_mac: '02:00:00:00:00:001'\n",
	     "t.yaml:6: 'gateway_mac' is not a MAC address like 02:00:00:00:00:01: "
	     "'02:00:00:00:00:001'"},
	    {MINIMAL "tunnel_source4: fd00::1\n", "t.yaml:6: 'tunnel_source4' is not an IPv4 "
						  "address: 'fd00::1'"},
	    {MINIMAL "tunnel_source6: 10.0.0.1\n", "t.yaml:6: 'tunnel_source6' is not an IPv6 "
						   "address: '10.0.0.1'"},
	    {MINIMAL "gateway_mac: [1]\n", "t.yaml:6: 'gateway_mac' must be a single value, not "
					   "a list or mapping"},
	    {MINIMAL "status_listen: 7070\n", "t.yaml:6: 'status_listen': invalid listen "
					      "address \"7070\": no ':PORT' (want HOST:PORT, "
					      "[HOST]:PORT or :PORT)"},
	    {MINIMAL "status_listen: 0.0.0.0:7070\n", "t.yaml:6: 'status_listen' 0.0.0.0:7070 is "
						      "not a loopback address: set "
						      "'api_token_file'"},
	    {MINIMAL "interface: [a, b]\n", "t.yaml:6: duplicate key 'interface' in the top "
					    "level"},
	    {"interface: [a, b]\nservices: []\nnodes: []\n",
	     "t.yaml:1: 'interface' must be a single value, not a list or mapping"},
	    {"interface: eth0\nservices: {}\nnodes: []\n", "t.yaml:2: 'services' must be a list"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1}\nnodes: []\n",
	     "t.yaml:3: missing required key 'port' in services[0]"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.300, port: 1}\nnodes: []\n",
	     "t.yaml:3: 'vip' is not an IPv4 or IPv6 address: '10.0.0.300'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 70000}\n",
	     "t.yaml:3: 'port' must be an integer from 0 to 65535, not '70000'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, policy: fast}\n",
	     "t.yaml:3: 'policy' must be one of rr, wrr, hash, least_conn, least_time, ai, not "
	     "'fast'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, proto: sctp}\n",
	     "t.yaml:3: 'proto' must be one of tcp, udp, not 'sctp'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, nodes: [x]}\n"
	     "nodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:3: service 's' names unknown node 'x'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, nodes: [a, a]}\n"
	     "nodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:3: service 's' lists node 'a' twice"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\n"
	     "  - {name: t, vip: 10.0.0.1, port: 1}\nnodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:4: service 't' has the same VIP, port and proto as 's'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\n"
	     "  - {name: s, vip: 10.0.0.2, port: 1}\nnodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:4: duplicate service name 's'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1}\n  - {name: a, address: 10.0.1.2}\n",
	     "t.yaml:6: duplicate node name 'a'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1, weight: 0}\n",
	     "t.yaml:3: service 's' has no node with a weight above 0"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 'fd00::1', port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:3: service 's': an IPv6 VIP cannot be tunnelled to IPv4 node 'a'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1, accelerator: tpu}\n",
	     "t.yaml:5: 'accelerator' must be one of none, gpu, other, not 'tpu'"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a-name-that-is-far-too-long-for-a-map, address: 10.0.1.1}\n",
	     "t.yaml:5: 'name' is too long (at most 31 characters)"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1, models: llama}\n",
	     "t.yaml:5: 'models' must be a list of model names"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1, port: 80}\n",
	     "t.yaml:5: unknown key 'port' in nodes[0]"},
	    /* a stateless TCP service must choose alike for every packet */
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, conntrack: false}\n"
	     "nodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:3: service 's': 'conntrack: false' needs 'policy: hash' for TCP (any other "
	     "policy chooses anew for every packet and splits a connection across nodes)"},
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1, accelerator: "
	     "none}\n"
	     "nodes:\n  - {name: a, address: 10.0.1.1}\n",
	     "t.yaml:3: service 's' has no node with a weight above 0 and accelerator none"},
	    {MINIMAL "mtu: 88\n",
	     "t.yaml:6: 'mtu' 88 leaves service 's' less than 576 bytes "
	     "inside the 20-byte tunnel header to node 'a': at least 596, or 0 for "
	     "no check"},
	    {"interface: eth0\nmtu: 1300\nservices:\n  - {name: s, vip: 'fd00::1', port: 1}\n"
	     "nodes:\n  - {name: a, address: 'fd00:1::1'}\n",
	     "t.yaml:2: 'mtu' 1300 leaves service 's' less than 1280 bytes inside the 40-byte "
	     "tunnel header to node 'a': at least 1320, or 0 for no check"},
	    /* only one document is read: a second one's keys would go unchecked */
	    {MINIMAL "---\nbogus: 1\n", "t.yaml:6: a second YAML document ('---'): the "
					"configuration is one"},
	    /* strtoull skips the blank and wraps the negative to 1 */
	    {"interface: eth0\nservices:\n  - {name: s, vip: 10.0.0.1, port: 1}\nnodes:\n"
	     "  - {name: a, address: 10.0.1.1, weight: ' -18446744073709551615'}\n",
	     "t.yaml:5: 'weight' must be an integer from 0 to 65535, not ' -18446744073709551615'"},
	    {MINIMAL "etcd: {endpoint: '', name: b1}\n", "t.yaml:6: 'endpoint' must not be empty"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: ''}\n",
	     "t.yaml:6: 'name' must not be empty"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: b1, prefix: ''}\n",
	     "t.yaml:6: 'prefix' must not be empty"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: 'b 1'}\n",
	     "t.yaml:6: 'etcd.name' 'b 1' has a character outside [A-Za-z0-9][A-Za-z0-9._-]*"},
	    {MINIMAL "etcd: {endpoint: '127.0.0.1:2379', name: b1}\n",
	     "t.yaml:6: 'etcd.endpoint' '127.0.0.1:2379' must start with http:// or https://"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: b1, api_url: 'x?y'}\n",
	     "t.yaml:6: 'etcd.api_url' 'x?y' must start with http:// or https://"},
	    {MINIMAL "etcd: {endpoint: 'http://127.0.0.1:2379', name: b1}\nbgp: {include: ''}\n",
	     "t.yaml:7: 'include' must not be empty"},
	    /* a plan's pins must fit every balancer's map */
	    {MINIMAL "maps: {pins: 4095}\netcd: {endpoint: 'http://127.0.0.1:2379', name: b1}\n",
	     "t.yaml:6: 'maps.pins' 4095 is below the 4096 pins a cluster plan carries: with "
	     "'etcd' it must be at least 4096"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[CFG_ERR_LEN];
		struct config cfg;

		if (!ASSERT_EQ(parse(&cfg, cases[i].yaml, err), -EINVAL, cases[i].msg))
			continue;
		ASSERT_STREQ(err, cases[i].msg, "message");
	}
}

static void missing_file(void)
{
	char err[CFG_ERR_LEN];
	struct config cfg;

	ASSERT_EQ(config__load(&cfg, "/nonexistent/aibl.yaml", err, sizeof(err)), -ENOENT, "load");
	ASSERT_STREQ(err, "/nonexistent/aibl.yaml: cannot open: No such file or directory", "msg");
}

/* ---- docs/aibld.md's "Configuration reference" against the key table ---- */

#define MAX_KEYS 256

struct key_set {
	int n;
	char path[MAX_KEYS][130]; /* section.key */
	bool no_help;
};

static bool key_set_has(const struct key_set *ks, const char *path)
{
	for (int i = 0; i < ks->n; i++)
		if (!strcmp(ks->path[i], path))
			return true;
	return false;
}

static void key_set_add(struct key_set *ks, const char *path)
{
	if (ks->n < MAX_KEYS)
		snprintf(ks->path[ks->n++], sizeof(ks->path[0]), "%s", path);
}

static int table_key(const char *path, const char *help, void *arg)
{
	struct key_set *ks = arg;

	if (!help || !help[0]) {
		test__fail_msg(__FILE__, __LINE__, "key '%s' has no help line", path);
		ks->no_help = true;
	}
	key_set_add(ks, path);
	return 0;
}

/*
 * The section reads "Top level:" or "`NAME:` ..." before each table, and a
 * row "| `KEY` | default | meaning |" per key: documented keys are
 * "KEY" at the top level and "NAME.KEY" in a section or list.
 */
static int readme_keys(const char *path, struct key_set *ks)
{
	char line[2048], section[64] = "", name[64];
	bool in = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "### ", 4)) {
			if (in)
				break;
			in = !strncmp(line, "### Configuration reference", 27);
			continue;
		}
		if (!in)
			continue;
		/* %n: set only when the whole pattern matched */
		int end = 0;

		if (!strncmp(line, "Top level:", 10)) {
			section[0] = 0;
		} else if (sscanf(line, "`%63[a-z0-9_]:`%n", name, &end) == 1 && end) {
			strcpy(section, name);
		} else if (sscanf(line, "| `%63[a-z0-9_]` |%n", name, &end) == 1 && end &&
			   ks->n < MAX_KEYS) {
			snprintf(ks->path[ks->n++], sizeof(ks->path[0]), "%s%s%s", section,
				 section[0] ? "." : "", name);
		}
	}
	fclose(f);
	return in ? 0 : -ENOENT;
}

static void readme_keys_equal_table(void)
{
	static struct key_set table, readme;
	const char *root = getenv("AIBL_ROOT");
	char path[512];

	snprintf(path, sizeof(path), "%s/docs/aibld.md", root ? root : ".");
	if (!ASSERT_OK(readme_keys(path, &readme), "docs/aibld.md has a Configuration reference"))
		return;
	ASSERT_OK(config__for_each_key(table_key, &table), "walk the key table");
	ASSERT_FALSE(table.no_help, "every key has a help line");
	/* a sanity floor: the parse found the tables, not one stray row */
	ASSERT_GE(readme.n, 60, "documented keys found");
	ASSERT_LE(table.n, MAX_KEYS - 1, "key set large enough");
	ASSERT_LE(readme.n, MAX_KEYS - 1, "key set large enough");
	for (int i = 0; i < table.n; i++)
		if (!key_set_has(&readme, table.path[i]))
			test__fail_msg(__FILE__, __LINE__,
				       "key '%s' is parsed but not in docs/aibld.md",
				       table.path[i]);
	for (int i = 0; i < readme.n; i++)
		if (!key_set_has(&table, readme.path[i]))
			test__fail_msg(
			    __FILE__, __LINE__,
			    "docs/aibld.md documents '%s', which the parser does not know",
			    readme.path[i]);
	ASSERT_EQ(readme.n, table.n, "as many documented keys as parsed ones");
}

static const struct test_case cases[] = {
    {"example", example},
    {"defaults", defaults},
    {"typed_addresses", typed_addresses},
    {"nodes_before_services", nodes_before_services},
    {"bad", bad},
    {"missing_file", missing_file},
    {"readme_keys_equal_table", readme_keys_equal_table},
};

TEST_MAIN("config", cases)
