// keck-top run: the command's process tree from fork/exit events (bcc).
// Loaded by keck_tui/runmeter/forks.py (found through keck_tui.probes.loader.program_path).
//
// `members` holds the tgids of the tree: user space puts the command's PID in
// before it execs; every process forked by a member joins at the fork itself,
// so a grandchild that lives 1 ms is still known. Threads (child tgid == parent
// tgid) are not entries. A member's leader exit marks its entry 2; user space
// counts it for the interval it exited in and then deletes it (so a reused PID
// is not taken for a member). Entries that found the map full are counted.
// task_struct's tgid offset comes from the running kernel's BTF (TASK_TGID_OFF).

BPF_HASH(members, u32, u8, MAX_MEMBERS);
BPF_ARRAY(overflow, u64, 1);

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    // TP_PROTO(struct task_struct *parent, struct task_struct *child); parent is current.
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    u32 child = 0;
    bpf_probe_read_kernel(&child, sizeof(child), (void *)ctx->args[1] + TASK_TGID_OFF);
    if (child == 0 || child == parent)
        return 0;  // a new thread of the same process
    if (!members.lookup(&parent))
        return 0;
    u8 one = 1;
    if (members.update(&child, &one) != 0) {
        u32 zero = 0;
        u64 *n = overflow.lookup(&zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    // TP_PROTO(struct task_struct *p); p is current. Only the group leader's exit counts.
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid)
        return 0;
    u8 *v = members.lookup(&tgid);
    if (v)
        *v = 2;
    return 0;
}
