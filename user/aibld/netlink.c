// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Interface and neighbour facts from rtnetlink through libnl: the index,
 * MAC, link state and addresses of the XDP interface (globals: source MAC,
 * tunnel source addresses), the MAC of every on-link node (aibl_backend
 * .mac, so the data plane needs no FIB lookup for them) and the default
 * gateway's MAC (globals.gw_mac, last resort). A second socket subscribed
 * to link, address, neighbour and route groups tells the loop when to
 * look again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include "aibld.h"
#include "log.h"

struct nl {
	struct nl_sock *sk; /* queries */
	struct nl_sock *ev; /* events */
	bool event;
};

static int on_event(struct nl_msg *msg, void *arg)
{
	((struct nl *)arg)->event = true;
	return NL_OK;
}

int netlink__open(struct nl **out)
{
	struct nl *nl = calloc(1, sizeof(*nl));
	int err;

	if (!nl)
		return -ENOMEM;
	nl->sk = nl_socket_alloc();
	nl->ev = nl_socket_alloc();
	if (!nl->sk || !nl->ev) {
		err = -ENOMEM;
		goto fail;
	}
	err = nl_connect(nl->sk, NETLINK_ROUTE);
	if (err)
		goto nlfail;
	nl_socket_disable_seq_check(nl->ev);
	nl_socket_modify_cb(nl->ev, NL_CB_VALID, NL_CB_CUSTOM, on_event, nl);
	err = nl_connect(nl->ev, NETLINK_ROUTE);
	if (err)
		goto nlfail;
	err = nl_socket_add_memberships(nl->ev, RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR,
					RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, 0);
	if (err)
		goto nlfail;
	nl_socket_set_nonblocking(nl->ev);
	*out = nl;
	return 0;
nlfail:
	pr_err("netlink: %s", nl_geterror(err));
	err = -EIO;
fail:
	netlink__close(nl);
	return err;
}

void netlink__close(struct nl *nl)
{
	if (!nl)
		return;
	if (nl->sk)
		nl_socket_free(nl->sk);
	if (nl->ev)
		nl_socket_free(nl->ev);
	free(nl);
}

int netlink__fd(const struct nl *nl)
{
	return nl_socket_get_fd(nl->ev);
}

bool netlink__events(struct nl *nl)
{
	bool ev;

	while (nl_recvmsgs_default(nl->ev) >= 0)
		;
	ev = nl->event;
	nl->event = false;
	return ev;
}

static void mac_of(struct nl_addr *a, __u8 mac[6])
{
	if (a && nl_addr_get_len(a) == 6)
		memcpy(mac, nl_addr_get_binary_addr(a), 6);
	else
		memset(mac, 0, 6);
}

struct addr_walk {
	int ifindex;
	union aibl_addr *a4, *a6;
	bool have4, have6;
};

static void addr_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_addr *ra = (struct rtnl_addr *)obj;
	struct addr_walk *w = arg;
	struct nl_addr *local = rtnl_addr_get_local(ra);

	if (rtnl_addr_get_ifindex(ra) != w->ifindex || !local)
		return;
	if (rtnl_addr_get_family(ra) == AF_INET && !w->have4) {
		memset(w->a4, 0, sizeof(*w->a4));
		memcpy(&w->a4->v4, nl_addr_get_binary_addr(local), 4);
		w->have4 = true;
	} else if (rtnl_addr_get_family(ra) == AF_INET6 && !w->have6 &&
		   rtnl_addr_get_scope(ra) == RT_SCOPE_UNIVERSE) {
		memcpy(w->a6->b, nl_addr_get_binary_addr(local), 16);
		w->have6 = true;
	}
}

/* MAC of addr on ifindex from the neighbour cache; 0 when known */
static int neigh_mac(struct nl_cache *neigh, int ifindex, int family, const void *addr, __u8 mac[6])
{
	struct nl_addr *a = nl_addr_build(family, addr, family == AF_INET ? 4 : 16);
	struct rtnl_neigh *n;
	int err = -ENOENT;

	memset(mac, 0, 6);
	if (!a)
		return -ENOMEM;
	n = rtnl_neigh_get(neigh, ifindex, a);
	if (n) {
		int state = rtnl_neigh_get_state(n);

		if (!(state & (NUD_FAILED | NUD_INCOMPLETE)) && rtnl_neigh_get_lladdr(n)) {
			mac_of(rtnl_neigh_get_lladdr(n), mac);
			err = 0;
		}
		rtnl_neigh_put(n);
	}
	nl_addr_put(a);
	return err;
}

struct gw_walk {
	int ifindex;
	struct nl_addr *gw;
};

static void route_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_route *r = (struct rtnl_route *)obj;
	struct gw_walk *w = arg;
	struct rtnl_nexthop *nh;

	if (w->gw || rtnl_route_get_table(r) != RT_TABLE_MAIN ||
	    nl_addr_get_prefixlen(rtnl_route_get_dst(r)) != 0 || rtnl_route_get_nnexthops(r) < 1)
		return;
	nh = rtnl_route_nexthop_n(r, 0);
	if (rtnl_route_nh_get_ifindex(nh) == w->ifindex && rtnl_route_nh_get_gateway(nh))
		w->gw = nl_addr_clone(rtnl_route_nh_get_gateway(nh));
}

/* Re-read everything; caller holds d->lock. */
int netlink__refresh(struct nl *nl, struct aibld *d)
{
	struct nl_cache *links = NULL, *addrs = NULL, *neigh = NULL, *routes = NULL;
	struct rtnl_link *link;
	struct addr_walk aw = {};
	struct gw_walk gw = {};
	int err;

	err = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &links);
	if (err)
		goto nlfail;
	link = rtnl_link_get_by_name(links, d->cfg.interface);
	if (!link) {
		pr_err("interface '%s' not found", d->cfg.interface);
		err = -ENODEV;
		goto out;
	}
	if (d->ifindex && d->ifindex != rtnl_link_get_ifindex(link))
		pr_warn("interface '%s' changed index %d -> %d", d->cfg.interface, d->ifindex,
			rtnl_link_get_ifindex(link));
	d->ifindex = rtnl_link_get_ifindex(link);
	mac_of(rtnl_link_get_addr(link), d->if_mac);
	{
		bool up = rtnl_link_get_flags(link) & IFF_UP &&
			  rtnl_link_get_operstate(link) != IF_OPER_DOWN;

		if (up != d->if_up)
			pr_info("interface '%s' is %s", d->cfg.interface, up ? "up" : "down");
		d->if_up = up;
	}
	rtnl_link_put(link);

	err = rtnl_addr_alloc_cache(nl->sk, &addrs);
	if (err)
		goto nlfail;
	aw.ifindex = d->ifindex;
	aw.a4 = &d->if_addr4;
	aw.a6 = &d->if_addr6;
	nl_cache_foreach(addrs, addr_cb, &aw);
	if (!aw.have4)
		memset(&d->if_addr4, 0, sizeof(d->if_addr4));
	if (!aw.have6)
		memset(&d->if_addr6, 0, sizeof(d->if_addr6));

	err = rtnl_neigh_alloc_cache(nl->sk, &neigh);
	if (err)
		goto nlfail;
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];
		const struct cfg_node *c;

		if (n->cfg_idx < 0)
			continue;
		c = &d->cfg.nodes[n->cfg_idx];
		neigh_mac(neigh, d->ifindex, c->address.family == AIBL_AF_INET ? AF_INET : AF_INET6,
			  c->address.addr.b, n->mac);
	}
	err = rtnl_route_alloc_cache(nl->sk, AF_INET, 0, &routes);
	if (err)
		goto nlfail;
	gw.ifindex = d->ifindex;
	nl_cache_foreach(routes, route_cb, &gw);
	memset(d->gw_mac, 0, 6);
	if (gw.gw) {
		neigh_mac(neigh, d->ifindex, AF_INET, nl_addr_get_binary_addr(gw.gw), d->gw_mac);
		nl_addr_put(gw.gw);
	}
	err = 0;
	goto out;
nlfail:
	pr_err("netlink: %s", nl_geterror(err));
	err = -EIO;
out:
	if (routes)
		nl_cache_free(routes);
	if (neigh)
		nl_cache_free(neigh);
	if (addrs)
		nl_cache_free(addrs);
	if (links)
		nl_cache_free(links);
	return err;
}
