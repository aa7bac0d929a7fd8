/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Format-scan benchmark (issue 9, "linear parsers"): PyTorch zips of 80,000
 * and 1,000,000 small tensors laid out as torch.save writes them
 * (tests/unit/torch_gen.h), scanned by lcp_format_parse through a file
 * descriptor, each scan in a fresh process so its peak RSS is its own.
 * Prints per file: the scan time, the scan's peak RSS above the process
 * baseline and that per byte of data.pkl, the verdict (ok or the refusal
 * reason), and as the reference the time CPython's own unpickler takes just
 * to run the same data.pkl (stub classes, nothing rebuilt). Targets: 80,000
 * storages settle in under 1 s, 1,000,000 in under 10 s.
 *
 * Usage: bench_format [N...] (default 80000 1000000);
 *        bench_format --write N FILE (writes one generated file);
 *        bench_format --scan FILE (internal: one scan, one result line).
 * Environment: PYTHON (default /usr/bin/python3), BENCH_SCAN_TIMEOUT seconds
 * (default 120) after which a scan counts as not settling. Exit status 0
 * unless the benchmark could not run (targets only print).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/torch_gen.h"
#include "lcpfs/format.h"

#define DEFAULT_MIN_SIZE 4096   /* the daemon's default min_size */
#define TARGET_80K_S 1.0
#define TARGET_1M_S 10.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A /proc/self/status field in kB, or -1. */
static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static int write_file(uint32_t n, const char *path)
{
	struct lcp_buf b = LCP_BUF_INIT;
	if (torch_gen_zip(&b, n, true) != LCP_OK) {
		fprintf(stderr, "bench_format: cannot generate %u tensors\n", n);
		return 1;
	}
	FILE *f = fopen(path, "wb");
	int rc = !f || fwrite(b.data, 1, b.len, f) != b.len;
	if (f && fclose(f) != 0)
		rc = 1;
	lcp_buf_free(&b);
	if (rc)
		fprintf(stderr, "bench_format: cannot write %s\n", path);
	return rc;
}

/* One scan: "seconds peak_kb ok nregions reason" on stdout. */
static int scan_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 1;
	struct lcp_reader r;
	if (lcp_reader_from_fd(&r, &fd) != LCP_OK)
		return 1;
	long base_kb = status_kb("VmRSS");
	double t0 = now_s();
	struct lcp_region_map m;
	lcp_err e = lcp_format_parse(&r, DEFAULT_MIN_SIZE, &m);
	double t = now_s() - t0;
	long peak_kb = status_kb("VmHWM");
	if (e != LCP_OK) {
		printf("%.3f %ld 0 0 error: %s\n", t, peak_kb - base_kb, lcp_strerror(e));
		return 0;
	}
	printf("%.3f %ld %d %zu %s\n", t, peak_kb - base_kb, m.ok, m.nregions, m.ok ? "-" : m.reason);
	lcp_region_map_free(&m);
	close(fd);
	return 0;
}

/* Runs argv in a child with stdout captured into out; kills it after
 * timeout_s. Returns the exit status, or -1 when it timed out. */
static int run_child(char *const argv[], unsigned timeout_s, char *out, size_t out_len)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return -2;
	pid_t pid = fork();
	if (pid < 0)
		return -2;
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		alarm(timeout_s);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t k;
	while (n + 1 < out_len && (k = read(pfd[0], out + n, out_len - 1 - n)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

static const char ref_script[] =
	"import pickle, sys, time, zipfile\n"
	"z = zipfile.ZipFile(sys.argv[1])\n"
	"p = z.read('archive/data.pkl')\n"
	"class Stub:\n"
	"    def __init__(self, *a): pass\n"
	"class U(pickle.Unpickler):\n"
	"    def find_class(self, mod, name): return Stub\n"
	"    def persistent_load(self, pid): return pid\n"
	"import io\n"
	"t = time.perf_counter(); U(io.BytesIO(p)).load(); t = time.perf_counter() - t\n"
	"print('%.3f %d' % (t, len(p)))\n";

static void bench_one(const char *self, uint32_t n, const char *dir, unsigned timeout_s)
{
	char path[512], out[512];
	snprintf(path, sizeof path, "%s/torch-%u.pt", dir, n);
	if (write_file(n, path) != 0)
		return;
	char *scan_argv[] = {(char *)self, (char *)"--scan", path, NULL};
	int rc = run_child(scan_argv, timeout_s, out, sizeof out);
	double t = 0;
	long peak_kb = 0;
	int ok = 0;
	size_t nreg = 0;
	char reason[256] = "";
	bool parsed = rc == 0 && sscanf(out, "%lf %ld %d %zu %255[^\n]", &t, &peak_kb, &ok, &nreg, reason) == 5;

	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	char ref_out[256] = "";
	char *ref_argv[] = {(char *)py, (char *)"-c", (char *)ref_script, path, NULL};
	double ref_t = -1;
	long pkl_len = 0;
	if (run_child(ref_argv, timeout_s, ref_out, sizeof ref_out) != 0 ||
	    sscanf(ref_out, "%lf %ld", &ref_t, &pkl_len) != 2)
		ref_t = -1;

	double target = n <= 80000 ? TARGET_80K_S : TARGET_1M_S;
	if (rc == -1) {
		printf("%9u storages  lcpfs scan: did not settle in %u s  (target %.0f s)  MISS\n", n, timeout_s,
		       target);
	} else if (!parsed) {
		printf("%9u storages  lcpfs scan: failed (status %d)\n", n, rc);
	} else {
		printf("%9u storages  lcpfs scan %8.3f s  peak %8.1f MiB (%4.0f B per storage", n, t,
		       (double)peak_kb / 1024, (double)peak_kb * 1024 / n);
		if (pkl_len > 0)
			printf(", %4.1f B per data.pkl byte", (double)peak_kb * 1024 / (double)pkl_len);
		printf(")");
		printf("  %s %zu regions  target < %.0f s  %s\n", ok ? "ok," : "refused,", nreg, target,
		       t < target ? "PASS" : "MISS");
		if (!ok)
			printf("%9s refusal: %s\n", "", reason);
	}
	if (ref_t >= 0)
		printf("%9s reference: CPython pickle.load of the same %ld-byte data.pkl %8.3f s\n", "", pkl_len,
		       ref_t);
	unlink(path);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--write") == 0)
		return write_file((uint32_t)strtoul(argv[2], NULL, 10), argv[3]);
	if (argc == 3 && strcmp(argv[1], "--scan") == 0)
		return scan_file(argv[2]);
	unsigned timeout_s = getenv("BENCH_SCAN_TIMEOUT") ? (unsigned)atoi(getenv("BENCH_SCAN_TIMEOUT")) : 120;
	char dir[] = "/tmp/bench_format.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("bench_format: mkdtemp");
		return 1;
	}
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl <= 0) {
		perror("bench_format: /proc/self/exe");
		return 1;
	}
	self[sl] = '\0';
	printf("PyTorch zip scan (torch.save layout, 2x2 F32 tensors, min_size %d)\n", DEFAULT_MIN_SIZE);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench_one(self, (uint32_t)strtoul(argv[i], NULL, 10), dir, timeout_s);
	} else {
		bench_one(self, 80000, dir, timeout_s);
		bench_one(self, 1000000, dir, timeout_s);
	}
	rmdir(dir);
	return 0;
}
