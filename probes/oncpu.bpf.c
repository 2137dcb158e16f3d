// keck-top on-CPU accounting (bcc). Loaded by keck_tui/probes/loader.py.
//
// Time is the scheduler's own: task->se.sum_exec_runtime, which the scheduler
// brings up to date for prev before sched_switch fires (the same counter behind
// getrusage and CLOCK_PROCESS_CPUTIME_ID). At each switch, prev ran for its
// sum_exec_runtime minus the value at which its time was last stored, kept per
// task in task-local storage (`accounted`, with TASK_STORAGE): exact whatever
// switches the tracepoint showed. The kernel does not show every switch-in at
// sched_switch (~1 switch in 150 on the development VM: the task switching out is
// not the `next` of the CPU's previous switch), so a per-CPU mark alone lost time:
// up to 30 ms of a 50 ms process, measured. A task's first switch-out after loading
// (no stored value yet) counts all of its runtime when it was forked after the
// probe was compiled (task->start_time > LOADED_NS); else the per-CPU mark:
// next's sum_exec_runtime at the CPU's last switch, when prev is that next; else
// the fair class's own switch-in mark, se.prev_sum_exec_runtime (which can come
// out short); for RT/deadline tasks, which keep no such mark, that first span is
// counted as a lost event. Without task storage (older kernels whose verifier
// refuses it here) every switch works that way.
// No clock is read on the hot path (bpf_ktime_get_ns costs ~60 ns per call on
// the development VM), and time in interrupts is not charged to tasks.
// Struct offsets come from the running kernel's BTF (the loader passes them),
// never from the possibly mismatched headers; prev's identity and cgroup come
// from the current-task helpers (prev == current at this tracepoint).
//
// Hot path per switch: one per-CPU array lookup (inlined by the JIT), two probe
// reads of next (prev, the current task, is read by direct loads through its BTF
// pointer: runtime pair, pid and tgid), one task-storage lookup, a scan of SLOTS
// per-CPU cache slots; on a miss one per-CPU hash lookup keyed by tgid (threads
// fold into their process; per-CPU values give exact per-core time without
// atomics). Switches out of the idle task (pid 0) stop after the per-CPU state,
// which also says who runs now and its runtime at switch-in (user space adds
// in-flight time).
//
// Macros set by the loader: SLOTS (a power of two), MAP_ENTRIES, EXIT_ENTRIES, task_struct offsets
// TASK_STORAGE (per-task accounted runtime) with LOADED_NS and TASK_START_OFF,
// TASK_PID_OFF (tgid follows pid), TASK_SUM_OFF (se.sum_exec_runtime, followed
// by se.prev_sum_exec_runtime), TASK_FLAGS_OFF, TASK_PRIO_OFF, and WITH_FREQ
// (power:cpu_frequency residency, which reads the clock) with MAX_CPUS; CTR_MASK
// (hardware counters, bit k for counter slot k: 0 cycles, 1 instructions, 2 LLC
// misses, 3 ref-cycles; only the slots whose perf events opened), CTR_LEADER (the
// slot that leads the perf group) with MAX_CPUS and CTR_ENTRIES. Without CTR_MASK
// no counter code is compiled in (no cost).

#include <uapi/linux/ptrace.h>

struct cpu_state {
    u64 sum_at_in;    // next's sum_exec_runtime when it was switched in
    u64 switches;     // sched_switch events seen on this CPU
    u64 resyncs;      // switches whose prev's time could not be known (lost events)
    u64 lost_ns;      // time not stored: the on-CPU map was full
    u64 lost_count;   // switches whose time went to lost_ns
    u32 cur_pid;      // who runs now (next at the last switch)
    u32 cur_tgid;
    // A few processes' recent time on this CPU, not yet added to `oncpu`: a CPU
    // usually alternates between a handful of processes, and a hit here costs a
    // few compares instead of a hash lookup. User space reads `oncpu` first,
    // then this, and adds both (a flush in between is only counted later).
    u32 slot_tgid[SLOTS];
    u64 slot_ns[SLOTS];
    u64 slot_cgid[SLOTS];
    u64 evict;        // round-robin victim
#ifdef WITH_FREQ
    u64 t_in;         // ktime at the last switch
    u64 busy_f3;      // cumulative busy ns x (f/fmax)^3 x 2^20 (mod 2^64)
    u64 f3_at_in;     // freq_state f3 integral at t_in
#endif
};

struct ontime {
    u64 ns;           // cumulative on-CPU ns of the process on this CPU
    u64 cgid;         // cgroup id of the thread that created the entry
};

struct exit_info {
    u64 ts;           // ktime of the leader's exit
    u64 cgid;
    u32 flags;        // task->flags (PF_KTHREAD marks a kernel thread)
    u32 pad;
    char comm[16];
};

BPF_PERCPU_ARRAY(state, struct cpu_state, 1);
BPF_PERCPU_HASH(oncpu, u32, struct ontime, MAP_ENTRIES);
BPF_HASH(exited, u32, struct exit_info, EXIT_ENTRIES);
BPF_ARRAY(exit_lost, u64, 1);
#ifdef TASK_STORAGE
struct accounted_sum {
    u64 sum;          // the task's sum_exec_runtime when its time was last stored (0: not yet)
};
BPF_TASK_STORAGE(accounted, struct accounted_sum);
#endif

#ifdef WITH_FREQ
struct freq_state {
    u64 last;         // ktime of the last frequency change (or of seeding)
    u64 f3;           // integral of (f/fmax)^3 x 2^20 dt up to `last`, ns (mod 2^64)
    u64 f1;           // integral of f dt up to `last`, kHz x ns (mod 2^64)
    u32 khz;          // current frequency (0: unknown)
    u32 cube;         // ((khz * 1024 / fmax)^3) >> 10, i.e. (f/fmax)^3 x 2^20
    u32 fmax_khz;     // set by the loader from cpuinfo_max_freq
    u32 pad;
};
BPF_ARRAY(freq, struct freq_state, MAX_CPUS);

static __always_inline u64 freq_integral(struct freq_state *f, u64 now)
{
    u64 dt = f->last && now > f->last ? now - f->last : 0;
    return f->f3 + dt * f->cube;
}

RAW_TRACEPOINT_PROBE(cpu_frequency)
{
    // TP_PROTO(unsigned int frequency, unsigned int cpu_id); may fire on another CPU.
    u32 khz = (u32)ctx->args[0];
    u32 cpu = (u32)ctx->args[1];
    struct freq_state *f = freq.lookup(&cpu);
    if (!f)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u64 dt = f->last && now > f->last ? now - f->last : 0;
    u64 r = f->fmax_khz ? (u64)khz * 1024 / f->fmax_khz : 1024;
    f->f3 += dt * f->cube;
    f->f1 += dt * f->khz;
    f->last = now;
    f->khz = khz;
    f->cube = (u32)((r * r * r) >> 10);
    return 0;
}
#endif


#ifdef CTR_MASK
// Hardware counters per (process, CPU). User space (the long-lived process, which
// must keep the map fd it inserted through open: the kernel drops a perf array's
// entries when that fd is closed) opens the slots' events on each CPU as one perf
// group, leader slot CTR_LEADER, and puts them in ctr_<slot> at the CPU's index. A
// group is scheduled on the PMU as a whole, so its members share the leader's time
// enabled and running: the leader is read with bpf_perf_event_read_value (count and
// both times), the members with bpf_perf_event_read (count only, no clock read:
// each clock read costs ~60 ns on the development VM). At every switch on a CPU the
// readings end prev's span and start next's. prev's span goes where its time goes:
// into the per-CPU cache slot that holds prev (ctr_cpu.slot_*, a few adds), and
// with the victim of a miss into the (tgid, CPU) hash; a span whose time is not
// slotted (an RT task's resync) goes to the hash directly. User space adds hash and
// slots, scales count x enabled / running (multiplexing) and reports running /
// enabled. A counter whose read fails (not installed yet: members are put in before
// the leader) gains no time and reads as absent, never as 0.
#define NCTR 4
#define CTR_FAILED(x) ((s64)(x) < 0 && (s64)(x) > -4096)  // bpf_perf_event_read's -errno
struct ctr_cpu {
    u64 v[NCTR];      // each counter's count at the last switch on this CPU
    u64 en;           // the group's time enabled and running then
    u64 run;
    u32 ok;           // bit k: counter k's count above is valid (the times: bit CTR_LEADER)
    u32 pad;
    u64 lost;         // spans not stored: the ctr map was full
    // Counts of the processes in the time path's SLOTS cache slots (same index; the
    // tgid is kept here too, so that one read of this array is self-consistent). Flat
    // [SLOTS * NCTR] arrays, slot-major: bcc's ctypes layouts lose a second dimension.
    u32 slot_tgid[SLOTS];
    u64 slot_v[SLOTS * NCTR];
    u64 slot_en[SLOTS * NCTR];
    u64 slot_run[SLOTS * NCTR];
};
struct ctr_key {
    u32 tgid;
    u32 cpu;
};
struct ctr_val {
    u64 v[NCTR];      // cumulative count of the process on this CPU, per counter
    u64 en[NCTR];     // cumulative time the group was enabled over the spans the counter counted
    u64 run[NCTR];    // ... and running (a counter that could not be read gains no time: absent)
};
BPF_PERCPU_ARRAY(ctr_state, struct ctr_cpu, 1);
BPF_HASH(ctr, struct ctr_key, struct ctr_val, CTR_ENTRIES);
#if CTR_MASK & 1
BPF_PERF_ARRAY(ctr_cycles, MAX_CPUS);
#endif
#if CTR_MASK & 2
BPF_PERF_ARRAY(ctr_instructions, MAX_CPUS);
#endif
#if CTR_MASK & 4
BPF_PERF_ARRAY(ctr_llc_misses, MAX_CPUS);
#endif
#if CTR_MASK & 8
BPF_PERF_ARRAY(ctr_ref_cycles, MAX_CPUS);
#endif

// Read the counters now: prev's span (when tgid is not the idle task's 0) into
// *span, and the readings kept as the start of next's span.
static __always_inline void ctr_read(struct ctr_cpu *c, struct ctr_val *span, u32 tgid)
{
    struct bpf_perf_event_value lead = {};
    u64 v[NCTR] = {};
    u32 ok = 0;
#if CTR_MASK & 1
#if CTR_LEADER == 0
    if (ctr_cycles.perf_counter_value(CUR_CPU_IDENTIFIER, &lead, sizeof(lead)) == 0) {
        v[0] = lead.counter;
        ok |= 1;
    }
#else
    v[0] = ctr_cycles.perf_read(CUR_CPU_IDENTIFIER);
    if (!CTR_FAILED(v[0]))
        ok |= 1;
#endif
#endif
#if CTR_MASK & 2
#if CTR_LEADER == 1
    if (ctr_instructions.perf_counter_value(CUR_CPU_IDENTIFIER, &lead, sizeof(lead)) == 0) {
        v[1] = lead.counter;
        ok |= 2;
    }
#else
    v[1] = ctr_instructions.perf_read(CUR_CPU_IDENTIFIER);
    if (!CTR_FAILED(v[1]))
        ok |= 2;
#endif
#endif
#if CTR_MASK & 4
#if CTR_LEADER == 2
    if (ctr_llc_misses.perf_counter_value(CUR_CPU_IDENTIFIER, &lead, sizeof(lead)) == 0) {
        v[2] = lead.counter;
        ok |= 4;
    }
#else
    v[2] = ctr_llc_misses.perf_read(CUR_CPU_IDENTIFIER);
    if (!CTR_FAILED(v[2]))
        ok |= 4;
#endif
#endif
#if CTR_MASK & 8
#if CTR_LEADER == 3
    if (ctr_ref_cycles.perf_counter_value(CUR_CPU_IDENTIFIER, &lead, sizeof(lead)) == 0) {
        v[3] = lead.counter;
        ok |= 8;
    }
#else
    v[3] = ctr_ref_cycles.perf_read(CUR_CPU_IDENTIFIER);
    if (!CTR_FAILED(v[3]))
        ok |= 8;
#endif
#endif
    if (!(ok & (1 << CTR_LEADER)))
        ok = 0;                 // no times: the span cannot be scaled, so it is not counted
    u32 both = tgid ? ok & c->ok : 0;
    u64 den = lead.enabled - c->en, drun = lead.running - c->run;
#pragma unroll
    for (int k = 0; k < NCTR; k++) {
        if (both & (1 << k)) {
            span->v[k] = v[k] - c->v[k];
            span->en[k] = den;
            span->run[k] = drun;
        }
        c->v[k] = v[k];
    }
    c->en = lead.enabled;
    c->run = lead.running;
    c->ok = ok;
}

// Add counts to (tgid, this CPU)'s hash entry; a full map is counted.
static __always_inline void ctr_hash_add(struct ctr_cpu *c, u32 tgid, u64 *v, u64 *en, u64 *run)
{
    if (!tgid || !(en[0] | en[1] | en[2] | en[3]))
        return;
    struct ctr_key key = {.tgid = tgid, .cpu = bpf_get_smp_processor_id()};
    struct ctr_val *a = ctr.lookup(&key);
    if (!a) {
        struct ctr_val init = {};
        ctr.insert(&key, &init);
        a = ctr.lookup(&key);
    }
    if (!a) {
        c->lost++;
        return;
    }
#pragma unroll
    for (int k = 0; k < NCTR; k++) {
        a->v[k] += v[k];
        a->en[k] += en[k];
        a->run[k] += run[k];
    }
}
#endif

RAW_TRACEPOINT_PROBE(sched_switch)
{
    // TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next, ...)
    u32 zero = 0;
    struct cpu_state *st = state.lookup(&zero);
    if (!st)
        return 0;
    u64 prev_sums[2] = {0, 0};  // se.sum_exec_runtime, se.prev_sum_exec_runtime
    u64 next_sum = 0, next_ids = 0;
    bpf_probe_read_kernel(&next_sum, 8, (void *)ctx->args[2] + TASK_SUM_OFF);
    bpf_probe_read_kernel(&next_ids, 8, (void *)ctx->args[2] + TASK_PID_OFF);
#ifdef TASK_STORAGE
    // prev is current: read through the BTF pointer (plain loads the verifier checks)
    struct task_struct *cur = bpf_get_current_task_btf();
    prev_sums[0] = *(u64 *)((void *)cur + TASK_SUM_OFF);
    prev_sums[1] = *(u64 *)((void *)cur + TASK_SUM_OFF + 8);
    u64 id = ((u64)*(u32 *)((void *)cur + TASK_PID_OFF + 4) << 32) | *(u32 *)((void *)cur + TASK_PID_OFF);
#else
    bpf_probe_read_kernel(prev_sums, 16, (void *)ctx->args[1] + TASK_SUM_OFF);
    u64 id = bpf_get_current_pid_tgid();
#endif
    u32 was = st->cur_pid;
    u64 at_in = st->sum_at_in;
    st->sum_at_in = next_sum;
    st->cur_pid = (u32)next_ids;
    st->cur_tgid = (u32)(next_ids >> 32);
    st->switches++;
#ifdef CTR_MASK
    struct ctr_cpu *cs = ctr_state.lookup(&zero);
    struct ctr_val span = {};
    if (cs)
        ctr_read(cs, &span, (u32)id ? (u32)(id >> 32) : 0);
#endif
#ifdef WITH_FREQ
    u64 now = bpf_ktime_get_ns();
    u32 cpu = bpf_get_smp_processor_id();
    struct freq_state *f = freq.lookup(&cpu);
    u64 f3 = 0;
    if (f)
        f3 = freq_integral(f, now);
    if ((u32)id && st->t_in)
        st->busy_f3 += f3 - st->f3_at_in;
    st->t_in = now;
    st->f3_at_in = f3;
#endif
    if ((u32)id == 0)           // the idle task (swapper/N): not a process
        return 0;
    u64 delta = 0;
    int known = 0;  // delta exact from the task's own record
#ifdef TASK_STORAGE
    struct accounted_sum *acc = accounted.task_storage_get(cur, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (acc) {
        u64 last = acc->sum;
        acc->sum = prev_sums[0];    // exact from its next switch on, whatever happens now
        if (last && last <= prev_sums[0]) {
            delta = prev_sums[0] - last;
            known = 1;
        } else if (*(u64 *)((void *)cur + TASK_START_OFF) > LOADED_NS) {
            delta = prev_sums[0];   // forked after loading: all of its runtime is new
            known = 1;
        }
    }
#endif
    if (!known) {
        if (was == (u32)id && at_in <= prev_sums[0]) {
            delta = prev_sums[0] - at_in;
        } else {
            int prio = 0;
            bpf_probe_read_kernel(&prio, 4, (void *)ctx->args[1] + TASK_PRIO_OFF);
            if (prio < 100 || prev_sums[1] > prev_sums[0]) {  // RT/deadline: no mark
                st->resyncs++;
#ifdef CTR_MASK
                if (cs)             // its counts are known all the same
                    ctr_hash_add(cs, id >> 32, span.v, span.en, span.run);
#endif
                return 0;
            }
            delta = prev_sums[0] - prev_sums[1];
        }
    }
    u32 tgid = id >> 32;
#pragma unroll
    for (int i = 0; i < SLOTS; i++) {
        if (st->slot_tgid[i] == tgid) {
            st->slot_ns[i] += delta;
#ifdef CTR_MASK
            if (cs) {
                if (cs->slot_tgid[i] != tgid) {  // kept in step with the time slots: never, but cheap to rule out
                    ctr_hash_add(cs, cs->slot_tgid[i], &cs->slot_v[i * NCTR], &cs->slot_en[i * NCTR], &cs->slot_run[i * NCTR]);
                    cs->slot_tgid[i] = tgid;
#pragma unroll
                    for (int k = 0; k < NCTR; k++) {
                        cs->slot_v[i * NCTR + k] = 0;
                        cs->slot_en[i * NCTR + k] = 0;
                        cs->slot_run[i * NCTR + k] = 0;
                    }
                }
#pragma unroll
                for (int k = 0; k < NCTR; k++) {
                    cs->slot_v[i * NCTR + k] += span.v[k];
                    cs->slot_en[i * NCTR + k] += span.en[k];
                    cs->slot_run[i * NCTR + k] += span.run[k];
                }
            }
#endif
            return 0;
        }
    }
    // Miss: flush the victim slot into the hash, then take it.
    u32 e = st->evict++ & (SLOTS - 1);
#ifdef CTR_MASK
    if (cs) {
        ctr_hash_add(cs, cs->slot_tgid[e], &cs->slot_v[e * NCTR], &cs->slot_en[e * NCTR], &cs->slot_run[e * NCTR]);
        cs->slot_tgid[e] = tgid;
#pragma unroll
        for (int k = 0; k < NCTR; k++) {
            cs->slot_v[e * NCTR + k] = span.v[k];
            cs->slot_en[e * NCTR + k] = span.en[k];
            cs->slot_run[e * NCTR + k] = span.run[k];
        }
    }
#endif
    u32 old = st->slot_tgid[e];
    u64 old_ns = st->slot_ns[e];
    u64 old_cgid = st->slot_cgid[e];
    st->slot_tgid[e] = tgid;
    st->slot_ns[e] = delta;
    st->slot_cgid[e] = bpf_get_current_cgroup_id();
    if (!old || !old_ns)
        return 0;
    struct ontime *v = oncpu.lookup(&old);
    if (v) {
        v->ns += old_ns;
        return 0;
    }
    struct ontime init = {.ns = old_ns, .cgid = old_cgid};
    if (oncpu.update(&old, &init) != 0) {
        st->lost_ns += old_ns;
        st->lost_count++;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    // Runs in the exiting task. Only a thread-group leader's exit ends a process
    // (a zombie leader with live threads is rare; user space collects it later).
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid)
        return 0;
    struct exit_info info = {.ts = bpf_ktime_get_ns(), .cgid = bpf_get_current_cgroup_id()};
    bpf_get_current_comm(&info.comm, sizeof(info.comm));
    bpf_probe_read_kernel(&info.flags, 4, (void *)bpf_get_current_task() + TASK_FLAGS_OFF);
    if (exited.update(&tgid, &info) != 0) {
        u32 zero = 0;
        u64 *lost = exit_lost.lookup(&zero);
        if (lost)
            __sync_fetch_and_add(lost, 1);
    }
    return 0;
}
