/* A fake libnvidia-ml.so.1: the NVML entry points the real nvidia-ml-py (pynvml) looks up for what
 * svbench's NVML sensor uses, with the C signatures and structure layouts of nvml.h, so the real
 * binding's ctypes calls run unchanged against it.
 *
 * Behaviour comes from the file named by FAKE_NVML_SCRIPT, read at the first nvmlInit*: `key=value`
 * lines, `#` comments, and a line `[gpu]` opening each GPU (keys before the first one are global).
 *
 *   global: driver=570.86.15   epoch_mono_ns=N (CLOCK_MONOTONIC origin of every *_at_s; default: the
 *           first nvmlInit)    init_error=CODE (nvmlInit fails with it: "driver not loaded" is 9)
 *   [gpu]:  uuid=GPU-...  name=...  power_w=300 (steady load)  energy_mj=N (counter at the origin)
 *           energy=0 (no counter: NOT_SUPPORTED, as before Volta)  instant=0 (no POWER_INSTANT field)
 *           reset_at_s=S (the counter restarts from 0, as on a driver reload)  lost_at_s=S (fell off the
 *           bus: every call for it answers GPU_IS_LOST from then on)  mig=1 (MIG mode enabled: whole-GPU
 *           power and energy as on a real board, no utilisation)  limit_min_w / limit_max_w (0: the
 *           constraints call is NOT_SUPPORTED)  util=50  mem_used / mem_total (bytes)
 *           denied=1 (another job's GPU behind a cgroup: counted by nvmlDeviceGetCount_v2, but its handle
 *           is NO_PERMISSION, as nvml.h warns)
 *
 * FAKE_NVML_LOG=path appends the name of every entry point called, one a line, so a test can see
 * which (versioned) symbols the binding really used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

typedef int nvmlReturn_t; /* an enum in nvml.h: int-sized */
enum {
    NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_NO_PERMISSION = 4, NVML_ERROR_NOT_FOUND = 6, NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_GPU_IS_LOST = 15, NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25, NVML_ERROR_UNKNOWN = 999,
};
enum { NVML_VALUE_TYPE_UNSIGNED_INT = 1 };
enum { NVML_FI_DEV_POWER_AVERAGE = 185, NVML_FI_DEV_POWER_INSTANT = 186 };

/* nvml.h's layouts; the asserts pin the sizes that pynvml's ctypes mirrors have on x86-64/aarch64 Linux */
typedef union { double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal;
                long long sllVal; int siVal; unsigned short usVal; } nvmlValue_t;
typedef struct { unsigned int fieldId; unsigned int scopeId; long long timestamp; long long latencyUsec;
                 int valueType; nvmlReturn_t nvmlReturn; nvmlValue_t value; } nvmlFieldValue_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
_Static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t as in nvml.h");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t: its version word is 0x02000028");
#define NVML_MEMORY_V2 (0x02000000u | (unsigned)sizeof(nvmlMemory_v2_t))

#define MAX_GPUS 16
typedef struct fake_gpu { /* an nvmlDevice_t is a pointer to one of these */
    char uuid[96], name[96];
    double power_w, reset_at_s, lost_at_s;
    long long energy_mj;
    int energy, instant, mig, denied;
    unsigned limit_min_mw, limit_max_mw, util;
    unsigned long long mem_used, mem_total;
} fake_gpu;
typedef fake_gpu *nvmlDevice_t;

static fake_gpu gpus[MAX_GPUS];
static int ngpus, live, loaded, init_error;
static char driver[80] = "570.86.15";
static long long epoch_ns = -1;

static void trace(const char *fn) {
    const char *path = getenv("FAKE_NVML_LOG");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) { fprintf(f, "%s\n", fn); fclose(f); }
}

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double elapsed_s(void) { return (mono_ns() - epoch_ns) / 1e9; }

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src); }

/* The script, read once per process: a bad line is an error, not a silently different GPU. */
static int load_script(void) {
    const char *path = getenv("FAKE_NVML_SCRIPT");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) { fprintf(stderr, "fake_nvml: FAKE_NVML_SCRIPT=%s cannot be read\n", path ? path : "(unset)"); return -1; }
    char line[512];
    fake_gpu *g = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        if (!strcmp(line, "[gpu]")) {
            if (ngpus == MAX_GPUS) break;
            g = &gpus[ngpus++];
            memset(g, 0, sizeof *g);
            snprintf(g->uuid, sizeof g->uuid, "GPU-00000000-0000-0000-0000-%012d", ngpus);
            copy(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
            g->power_w = 300; g->energy_mj = 5000000; g->energy = 1; g->instant = 1;
            g->reset_at_s = g->lost_at_s = -1;
            g->limit_min_mw = 200000; g->limit_max_mw = 700000; g->util = 50;
            g->mem_used = 2ULL << 30; g->mem_total = 80ULL << 30;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq) { fprintf(stderr, "fake_nvml: %s: no '=' in %s\n", path, line); fclose(f); return -1; }
        *eq = 0;
        const char *k = line, *v = eq + 1;
        if (!g) {
            if (!strcmp(k, "driver")) copy(driver, sizeof driver, v);
            else if (!strcmp(k, "epoch_mono_ns")) epoch_ns = atoll(v);
            else if (!strcmp(k, "init_error")) init_error = atoi(v);
            else goto unknown;
        } else if (!strcmp(k, "uuid")) copy(g->uuid, sizeof g->uuid, v);
        else if (!strcmp(k, "name")) copy(g->name, sizeof g->name, v);
        else if (!strcmp(k, "power_w")) g->power_w = atof(v);
        else if (!strcmp(k, "energy_mj")) g->energy_mj = atoll(v);
        else if (!strcmp(k, "energy")) g->energy = atoi(v);
        else if (!strcmp(k, "instant")) g->instant = atoi(v);
        else if (!strcmp(k, "reset_at_s")) g->reset_at_s = atof(v);
        else if (!strcmp(k, "lost_at_s")) g->lost_at_s = atof(v);
        else if (!strcmp(k, "mig")) g->mig = atoi(v);
        else if (!strcmp(k, "denied")) g->denied = atoi(v);
        else if (!strcmp(k, "limit_min_w")) g->limit_min_mw = (unsigned)(atof(v) * 1000);
        else if (!strcmp(k, "limit_max_w")) g->limit_max_mw = (unsigned)(atof(v) * 1000);
        else if (!strcmp(k, "util")) g->util = (unsigned)atoi(v);
        else if (!strcmp(k, "mem_used")) g->mem_used = strtoull(v, NULL, 10);
        else if (!strcmp(k, "mem_total")) g->mem_total = strtoull(v, NULL, 10);
        else goto unknown;
        continue;
    unknown:
        fprintf(stderr, "fake_nvml: %s: unknown key %s\n", path, k);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Every device call starts here: initialised, a handle of ours, and not fallen off the bus. */
static nvmlReturn_t check(nvmlDevice_t d) {
    if (!live) return NVML_ERROR_UNINITIALIZED;
    if (d < gpus || d >= gpus + ngpus) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->denied) return NVML_ERROR_NO_PERMISSION;
    if (d->lost_at_s >= 0 && elapsed_s() >= d->lost_at_s) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}
#define DEVICE(fn, d) do { trace(fn); nvmlReturn_t r_ = check(d); if (r_) return r_; } while (0)

static nvmlReturn_t put_string(char *dst, unsigned n, const char *src) {
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > n) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(dst, src);
    return NVML_SUCCESS;
}

/* --- init, shutdown, errors: NVML counts inits, and every init needs its shutdown --- */
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    trace("nvmlInitWithFlags");
    if (!loaded) {
        if (load_script()) return NVML_ERROR_UNKNOWN;
        loaded = 1;
        if (epoch_ns < 0) epoch_ns = mono_ns();
    }
    if (init_error) return init_error;
    live++;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    trace("nvmlShutdown");
    if (!live) return NVML_ERROR_UNINITIALIZED;
    live--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    trace("nvmlSystemGetDriverVersion");
    if (!live) return NVML_ERROR_UNINITIALIZED;
    return put_string(version, length, driver);
}

/* --- enumeration --- */
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    trace("nvmlDeviceGetCount_v2");
    if (!live) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned)ngpus;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    trace("nvmlDeviceGetHandleByIndex_v2");
    if (!live) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned)ngpus || !device) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = check(&gpus[index]); /* a lost GPU has no handle to give either */
    if (r) return r;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    trace("nvmlDeviceGetHandleByUUID");
    if (!live) return NVML_ERROR_UNINITIALIZED;
    if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < ngpus; i++)
        if (!strcmp(gpus[i].uuid, uuid)) {
            nvmlReturn_t r = check(&gpus[i]);
            if (r) return r;
            *device = &gpus[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    DEVICE("nvmlDeviceGetUUID", d);
    return put_string(uuid, length, d->uuid);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    DEVICE("nvmlDeviceGetName", d);
    return put_string(name, length, d->name);
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    DEVICE("nvmlDeviceGetMigMode", d);
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = *pending = (unsigned)d->mig;
    return NVML_SUCCESS;
}

/* --- power and energy --- */
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *energy) {
    DEVICE("nvmlDeviceGetTotalEnergyConsumption", d);
    if (!d->energy) return NVML_ERROR_NOT_SUPPORTED;
    if (!energy) return NVML_ERROR_INVALID_ARGUMENT;
    double t = elapsed_s();
    if (d->reset_at_s >= 0 && t >= d->reset_at_s) /* driver reload: counting again from 0 */
        *energy = (unsigned long long)(d->power_w * 1000.0 * (t - d->reset_at_s));
    else
        *energy = (unsigned long long)(d->energy_mj + d->power_w * 1000.0 * (t > 0 ? t : 0));
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *power) {
    DEVICE("nvmlDeviceGetPowerUsage", d);
    if (!power) return NVML_ERROR_INVALID_ARGUMENT;
    *power = (unsigned)(d->power_w * 1000.0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t d, unsigned int *min, unsigned int *max) {
    DEVICE("nvmlDeviceGetPowerManagementLimitConstraints", d);
    if (!d->limit_max_mw) return NVML_ERROR_NOT_SUPPORTED;
    if (!min || !max) return NVML_ERROR_INVALID_ARGUMENT;
    *min = d->limit_min_mw;
    *max = d->limit_max_mw;
    return NVML_SUCCESS;
}

/* Like the driver: the call succeeds for a live GPU and each field carries its own return code. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values) {
    DEVICE("nvmlDeviceGetFieldValues", d);
    if (count < 0 || (count && !values)) return NVML_ERROR_INVALID_ARGUMENT;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = tv.tv_sec * 1000000LL + tv.tv_usec; /* µs since the epoch, as NVML stamps them */
        v->latencyUsec = 0;
        if ((v->fieldId == NVML_FI_DEV_POWER_INSTANT && d->instant) || v->fieldId == NVML_FI_DEV_POWER_AVERAGE) {
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
            v->value.uiVal = (unsigned)(d->power_w * 1000.0); /* mW */
            v->nvmlReturn = NVML_SUCCESS;
        } else {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        }
    }
    return NVML_SUCCESS;
}

/* --- context figures --- */
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    DEVICE("nvmlDeviceGetUtilizationRates", d);
    if (d->mig) return NVML_ERROR_NOT_SUPPORTED; /* nvml.h: not supported on MIG-enabled GPUs */
    if (!u) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = d->util;
    u->memory = d->util / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    DEVICE("nvmlDeviceGetMemoryInfo", d);
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = d->mem_total;
    m->used = d->mem_used;
    m->free = d->mem_total - d->mem_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    DEVICE("nvmlDeviceGetMemoryInfo_v2", d);
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    if (m->version != NVML_MEMORY_V2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = d->mem_total;
    m->reserved = 0;
    m->used = d->mem_used;
    m->free = d->mem_total - d->mem_used;
    return NVML_SUCCESS;
}
