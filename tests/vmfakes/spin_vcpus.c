/* A stand-in for a QEMU/KVM process in tests: started with QEMU's argv (argv[0]
 * "qemu-system-x86_64", "-name guest=NAME,debug-threads=on", ...), it runs one
 * spinning thread per vCPU named "CPU <n>/KVM" as QEMU names its vCPU threads
 * (accel/kvm/kvm-accel-ops.c), and exits after SPIN_SECONDS (default 60).
 * SPIN_THREADS sets the number of vCPU threads (default 2); SPIN_DUTY (percent,
 * default 100) makes each spin only part of the time. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int duty = 100;
static double until;

static void *vcpu(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "CPU %ld/KVM", (long)arg);
    pthread_setname_np(pthread_self(), name);
    volatile unsigned long x = 0;
    while (now() < until) {
        double start = now();
        while (now() - start < 0.01 * duty / 100.0) x++;
        if (duty < 100) usleep((useconds_t)(10000 * (100 - duty) / 100));
    }
    return NULL;
}

int main(void) {
    int n = getenv("SPIN_THREADS") ? atoi(getenv("SPIN_THREADS")) : 2;
    double secs = getenv("SPIN_SECONDS") ? atof(getenv("SPIN_SECONDS")) : 60.0;
    duty = getenv("SPIN_DUTY") ? atoi(getenv("SPIN_DUTY")) : 100;
    until = now() + secs;
    pthread_t t[64];
    if (n > 64) n = 64;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, vcpu, (void *)i);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
