/*
 * network.c — what `tandem ctr run --net bridge` needs from the kernel: a bridge (the bridge
 * ioctls), a veth pair whose one end is made straight inside the container's network namespace
 * (rtnetlink: no ioctl makes a veth), and that end configured from inside the namespace (a
 * thread that setns()es there: the namespace is the thread's, the process stays where it is).
 * C because rtnetlink's nested attributes, struct ifreq's unions and struct rtentry are macros and
 * unions Swift reads badly; and the thread must not run Swift after setns.
 */
#define _GNU_SOURCE
#include "clinux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int bridge_ioctl(unsigned long request, const char *bridge, const char *interface) {
    if (strlen(bridge) >= IFNAMSIZ || (interface && strlen(interface) >= IFNAMSIZ)) return -EINVAL;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    int result;
    if (interface) {
        struct ifreq request_data;
        memset(&request_data, 0, sizeof request_data);
        snprintf(request_data.ifr_name, IFNAMSIZ, "%s", bridge);
        request_data.ifr_ifindex = (int)if_nametoindex(interface);
        result = request_data.ifr_ifindex == 0 ? -ENODEV : (ioctl(sock, request, &request_data) == 0 ? 0 : -errno);
    } else {
        result = ioctl(sock, request, bridge) == 0 ? 0 : -errno;
    }
    close(sock);
    return result;
}

int clinux_bridge_add(const char *name) { return bridge_ioctl(SIOCBRADDBR, name, NULL); }

int clinux_bridge_delete(const char *name) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock >= 0) {
        /* A bridge that is up cannot be deleted: down first. */
        struct ifreq request;
        memset(&request, 0, sizeof request);
        snprintf(request.ifr_name, IFNAMSIZ, "%s", name);
        if (ioctl(sock, SIOCGIFFLAGS, &request) == 0) {
            request.ifr_flags &= ~IFF_UP;
            ioctl(sock, SIOCSIFFLAGS, &request);
        }
        close(sock);
    }
    return bridge_ioctl(SIOCBRDELBR, name, NULL);
}

int clinux_bridge_detach(const char *bridge, const char *interface) { return bridge_ioctl(SIOCBRDELIF, bridge, interface); }

int clinux_bridge_attach(const char *bridge, const char *interface) {
    int result = bridge_ioctl(SIOCBRADDIF, bridge, interface);
    if (result != 0) return result;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    snprintf(request.ifr_name, IFNAMSIZ, "%s", interface);
    if (ioctl(sock, SIOCGIFFLAGS, &request) == 0) {
        request.ifr_flags |= IFF_UP;
        result = ioctl(sock, SIOCSIFFLAGS, &request) == 0 ? 0 : -errno;
    } else {
        result = -errno;
    }
    close(sock);
    return result;
}

/* rtnetlink attributes into `buffer` at `*length` (bounded by `size`). */
static struct rtattr *attribute(char *buffer, size_t *length, size_t size, unsigned short type, const void *data, size_t data_length) {
    size_t total = RTA_LENGTH(data_length);
    if (NLMSG_ALIGN(*length) + RTA_ALIGN(total) > size) return NULL;
    struct rtattr *attr = (struct rtattr *)(buffer + NLMSG_ALIGN(*length));
    attr->rta_type = type;
    attr->rta_len = (unsigned short)total;
    if (data_length) memcpy(RTA_DATA(attr), data, data_length);
    *length = NLMSG_ALIGN(*length) + RTA_ALIGN(total);
    return attr;
}

static void close_nest(char *buffer, size_t length, struct rtattr *nest) {
    nest->rta_len = (unsigned short)(buffer + length - (char *)nest);
}

int clinux_veth_create(const char *host_name, const char *peer_name, pid_t peer_pid) {
    if (strlen(host_name) >= IFNAMSIZ || strlen(peer_name) >= IFNAMSIZ) return -EINVAL;
    char buffer[1024];
    memset(buffer, 0, sizeof buffer);
    struct nlmsghdr *header = (struct nlmsghdr *)buffer;
    header->nlmsg_type = RTM_NEWLINK;
    header->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    header->nlmsg_seq = 1;
    size_t length = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    struct ifinfomsg *info = NLMSG_DATA(header);
    info->ifi_family = AF_UNSPEC;
    int ok = attribute(buffer, &length, sizeof buffer, IFLA_IFNAME, host_name, strlen(host_name) + 1) != NULL;
    struct rtattr *link_info = attribute(buffer, &length, sizeof buffer, IFLA_LINKINFO, NULL, 0);
    ok = ok && link_info && attribute(buffer, &length, sizeof buffer, IFLA_INFO_KIND, "veth", 4) != NULL;
    struct rtattr *data = ok ? attribute(buffer, &length, sizeof buffer, IFLA_INFO_DATA, NULL, 0) : NULL;
    struct rtattr *peer = data ? attribute(buffer, &length, sizeof buffer, VETH_INFO_PEER, NULL, 0) : NULL;
    if (!peer || NLMSG_ALIGN(length) + sizeof(struct ifinfomsg) > sizeof buffer) return -ENOBUFS;
    /* The peer's own ifinfomsg, then its attributes: made in `peer_pid`'s namespace, named there. */
    length = NLMSG_ALIGN(length) + sizeof(struct ifinfomsg);
    uint32_t pid = (uint32_t)peer_pid;
    ok = attribute(buffer, &length, sizeof buffer, IFLA_IFNAME, peer_name, strlen(peer_name) + 1) != NULL
        && attribute(buffer, &length, sizeof buffer, IFLA_NET_NS_PID, &pid, sizeof pid) != NULL;
    if (!ok) return -ENOBUFS;
    close_nest(buffer, length, peer);
    close_nest(buffer, length, data);
    close_nest(buffer, length, link_info);
    header->nlmsg_len = (uint32_t)length;

    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock < 0) return -errno;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    int result = 0;
    if (sendto(sock, buffer, length, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        result = -errno;
    } else {
        char reply[1024];
        ssize_t got = recv(sock, reply, sizeof reply, 0);
        if (got < 0) result = -errno;
        else {
            struct nlmsghdr *answer = (struct nlmsghdr *)reply;
            if (got < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || answer->nlmsg_type != NLMSG_ERROR) result = -EPROTO;
            else result = ((struct nlmsgerr *)NLMSG_DATA(answer))->error;  /* 0, or -errno */
        }
    }
    close(sock);
    return result;
}

struct netns_job {
    pid_t pid;
    const char *name, *address, *gateway;
    int prefix;
    int result;
};

static void *configure_in_netns(void *argument) {
    struct netns_job *job = argument;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)job->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { job->result = -errno; return NULL; }
    int entered = setns(fd, CLONE_NEWNET);
    int error = errno;
    close(fd);
    if (entered != 0) { job->result = -error; return NULL; }
    /* A gratuitous ARP when it comes up (arp_notify, as Docker's endpoints send one): an address
     * is leased again soon after its last container, and the host and the other containers still
     * hold its old MAC (REACHABLE for up to 45 s: measured, every packet went to the old MAC). */
    char sysctl[96];
    snprintf(sysctl, sizeof sysctl, "/proc/sys/net/ipv4/conf/%s/arp_notify", job->name);
    int knob = open(sysctl, O_WRONLY | O_CLOEXEC);
    if (knob >= 0) {
        if (write(knob, "1", 1) != 1) { /* best effort: without it, the old MAC ages out */ }
        close(knob);
    }
    job->result = clinux_interface_up(job->name, job->address, job->prefix);
    if (job->result != 0 || !job->gateway) return NULL;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) { job->result = -errno; return NULL; }
    struct rtentry route;
    memset(&route, 0, sizeof route);
    struct sockaddr_in *destination = (struct sockaddr_in *)&route.rt_dst;
    struct sockaddr_in *gateway = (struct sockaddr_in *)&route.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&route.rt_genmask;
    destination->sin_family = gateway->sin_family = mask->sin_family = AF_INET;
    if (inet_pton(AF_INET, job->gateway, &gateway->sin_addr) != 1) job->result = -EINVAL;
    else {
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        if (ioctl(sock, SIOCADDRT, &route) != 0) job->result = -errno;
    }
    close(sock);
    return NULL;
}

int clinux_netns_interface_up(pid_t pid, const char *name, const char *address, int prefix, const char *gateway) {
    struct netns_job job = { .pid = pid, .name = name, .address = address, .gateway = gateway, .prefix = prefix, .result = 0 };
    pthread_t thread;
    int error = pthread_create(&thread, NULL, configure_in_netns, &job);
    if (error != 0) return -error;
    pthread_join(thread, NULL);
    return job.result;
}

/* ctnetlink (linux/netfilter/nfnetlink_conntrack.h), spelled out: the uapi header needs the
 * nfnetlink one, whose constants are these. */
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

/* The attribute `type` directly inside the `length` bytes at `data`, or NULL. */
static const struct nlattr *nested(const void *data, size_t length, unsigned short type) {
    const char *at = data, *end = at + length;
    while (at + NLA_HDRLEN <= end) {
        const struct nlattr *attr = (const struct nlattr *)at;
        if (attr->nla_len < NLA_HDRLEN || at + attr->nla_len > end) return NULL;
        if ((attr->nla_type & NLA_TYPE_MASK) == type) return attr;
        at += NLA_ALIGN(attr->nla_len);
    }
    return NULL;
}

static int conntrack_request(int sock, uint16_t type, uint16_t flags, const void *payload, size_t payload_length, uint32_t seq) {
    char buffer[512];
    if (NLMSG_SPACE(sizeof(struct nfgenmsg)) + payload_length > sizeof buffer) return -ENOBUFS;
    memset(buffer, 0, sizeof buffer);
    struct nlmsghdr *header = (struct nlmsghdr *)buffer;
    header->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
    header->nlmsg_flags = NLM_F_REQUEST | flags;
    header->nlmsg_seq = seq;
    struct nfgenmsg *generic = NLMSG_DATA(header);
    generic->nfgen_family = AF_INET;
    generic->version = NFNETLINK_V0;
    size_t length = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    memcpy(buffer + NLMSG_ALIGN(length), payload, payload_length);
    header->nlmsg_len = (uint32_t)(NLMSG_ALIGN(length) + payload_length);
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    return sendto(sock, buffer, header->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0 ? -errno : 0;
}

int clinux_conntrack_forget(int protocol, uint16_t port) {
    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (sock < 0) return -errno;
    /* The matching entries' original tuples (attribute and all), kept until the dump ends:
     * deleting in the middle of a dump would disturb it. At most 4096 per call. */
    enum { MAX_MATCHES = 4096, TUPLE_SIZE = 128 };
    static char tuples[MAX_MATCHES][TUPLE_SIZE];
    int matches = 0, result = conntrack_request(sock, IPCTNL_MSG_CT_GET, NLM_F_DUMP, NULL, 0, 1);
    static char reply[65536];
    int done = result != 0;
    while (!done) {
        ssize_t got = recv(sock, reply, sizeof reply, 0);
        if (got < 0) { if (errno == EINTR) continue; result = -errno; break; }
        for (struct nlmsghdr *message = (struct nlmsghdr *)reply; NLMSG_OK(message, (size_t)got); message = NLMSG_NEXT(message, got)) {
            if (message->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (message->nlmsg_type == NLMSG_ERROR) {
                result = ((struct nlmsgerr *)NLMSG_DATA(message))->error;
                done = 1;
                break;
            }
            size_t skip = NLMSG_ALIGN(sizeof(struct nfgenmsg));
            if (message->nlmsg_len < NLMSG_LENGTH(skip)) continue;
            const char *attributes = (const char *)NLMSG_DATA(message) + skip;
            size_t length = message->nlmsg_len - NLMSG_LENGTH(skip);
            const struct nlattr *original = nested(attributes, length, CTA_TUPLE_ORIG);
            if (!original || original->nla_len > TUPLE_SIZE) continue;
            const struct nlattr *proto = nested((const char *)original + NLA_HDRLEN, original->nla_len - NLA_HDRLEN, CTA_TUPLE_PROTO);
            if (!proto) continue;
            const char *inside = (const char *)proto + NLA_HDRLEN;
            size_t inside_length = proto->nla_len - NLA_HDRLEN;
            const struct nlattr *number = nested(inside, inside_length, CTA_PROTO_NUM);
            const struct nlattr *destination = nested(inside, inside_length, CTA_PROTO_DST_PORT);
            if (!number || !destination || number->nla_len < NLA_HDRLEN + 1 || destination->nla_len < NLA_HDRLEN + 2) continue;
            uint8_t number_value = *((const uint8_t *)number + NLA_HDRLEN);
            uint16_t port_value;
            memcpy(&port_value, (const char *)destination + NLA_HDRLEN, 2);
            if (number_value == protocol && ntohs(port_value) == port && matches < MAX_MATCHES) {
                memcpy(tuples[matches++], original, original->nla_len);
            }
        }
    }
    int deleted = 0;
    for (int i = 0; i < matches && result == 0; i++) {
        const struct nlattr *tuple = (const struct nlattr *)tuples[i];
        if (conntrack_request(sock, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, tuple, NLA_ALIGN(tuple->nla_len), (uint32_t)(i + 2)) != 0) break;
        ssize_t got = recv(sock, reply, sizeof reply, 0);
        if (got >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
            struct nlmsghdr *answer = (struct nlmsghdr *)reply;
            if (answer->nlmsg_type == NLMSG_ERROR && ((struct nlmsgerr *)NLMSG_DATA(answer))->error == 0) deleted++;
        }
    }
    close(sock);
    return result != 0 ? result : deleted;
}

int clinux_neighbour_forget(const char *interface, const char *address) {
    struct {
        struct nlmsghdr header;
        struct ndmsg neighbour;
        char attributes[64];
    } request;
    memset(&request, 0, sizeof request);
    unsigned index = if_nametoindex(interface);
    if (index == 0) return -ENODEV;
    struct in_addr ip;
    if (inet_pton(AF_INET, address, &ip) != 1) return -EINVAL;
    request.header.nlmsg_type = RTM_DELNEIGH;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.nlmsg_seq = 1;
    request.neighbour.ndm_family = AF_INET;
    request.neighbour.ndm_ifindex = (int)index;
    size_t length = NLMSG_LENGTH(sizeof(struct ndmsg));
    if (!attribute((char *)&request, &length, sizeof request, NDA_DST, &ip, sizeof ip)) return -ENOBUFS;
    request.header.nlmsg_len = (uint32_t)length;
    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock < 0) return -errno;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    int result = 0;
    if (sendto(sock, &request, length, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) result = -errno;
    else {
        char reply[512];
        ssize_t got = recv(sock, reply, sizeof reply, 0);
        if (got < 0) result = -errno;
        else if (got >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && ((struct nlmsghdr *)reply)->nlmsg_type == NLMSG_ERROR)
            result = ((struct nlmsgerr *)NLMSG_DATA((struct nlmsghdr *)reply))->error;
    }
    close(sock);
    return result;
}
