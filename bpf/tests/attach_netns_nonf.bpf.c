// attach_netns.bpf.c without its netfilter program: the namespace's own hooks (sk_lookup,
// flow_dissector) on a kernel before 6.4, which has no netfilter programs and refuses the whole
// of attach_netns.bpf.o for that one.
#define ATTACH_NETNS_NO_NETFILTER
#include "attach_netns.bpf.c"
