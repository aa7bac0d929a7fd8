/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `lcpfs inspect --svg`: a file's report as a picture. One row per tensor:
 * its name, the encoding chosen (colour and label: q4, q8, lossless, exact),
 * a bar of the bits it stores per weight and a bar of its SQNR (hatched and
 * marked infinite for exact and lossless tensors, which have no error). Files
 * with more than ROWS_MAX tensors get one row per name pattern instead
 * (digits replaced by '#', so "layers.#.attention.wq.weight" stands for all
 * layers), drawn as the mean with a min-max whisker; every tensor's name is
 * still in the row's tooltip. Plain SVG 1.1: no script, no external
 * reference, no font file, so any viewer or converter shows the same.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/alloc.h"

#define ROWS_MAX 512     /* one row per tensor up to this many tensors */
#define WIDTH 1100
#define ROW_H 16
#define TOP 134          /* title, summary, legend, column heads and axis labels */
#define NAME_X 12
#define NAME_CHARS 50    /* longer names are cut (the tooltip has them whole) */
#define ENC_X 360
#define BPW_X 430
#define BPW_W 290
#define SQNR_X 780
#define SQNR_W 260
#define SQNR_FLOOR_DB 60.0 /* the SQNR axis spans at least 0..60 dB */

static const char *const encodings[] = {"q4", "q8", "lossless", "exact"};
static const char *const colours[] = {"#3b6fd4", "#2e9e5b", "#e08a1e", "#8c8c8c"};
#define NENC 4

static int enc_index(const char *e)
{
	for (int i = 0; i < NENC; i++)
		if (e && strcmp(e, encodings[i]) == 0)
			return i;
	return NENC - 1;
}

/* Writes s as XML character data: markup escaped, control characters and
 * bytes that are not UTF-8 written as '?' (XML allows neither). At most max
 * characters, then an ellipsis (max 0: no limit). */
static void put_text(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t chars = 0;

	while (*p) {
		if (max && chars == max) {
			fputs("\xe2\x80\xa6", f);
			return;
		}
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
				 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		for (size_t k = 1; k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				n = 0;
		if (n == 0 || (n == 2 && *p < 0xc2) || (n == 1 && *p < 0x20 && *p != '\t')) {
			fputc('?', f);
			p++;
		} else if (n == 1) {
			switch (*p) {
			case '&': fputs("&amp;", f); break;
			case '<': fputs("&lt;", f); break;
			case '>': fputs("&gt;", f); break;
			case '"': fputs("&quot;", f); break;
			default: fputc(*p, f); break;
			}
			p++;
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
		chars++;
	}
}

/* One drawn row: a tensor, or a group of tensors sharing a name pattern. */
struct row {
	char *label;      /* lcp_malloc'ed */
	size_t count;
	size_t *members;  /* indices into the report's tensors (lcp_malloc'ed) */
	size_t nmembers, cap;
	int enc_count[NENC];
	double bpw_min, bpw_max, bpw_sum;
	double sqnr_min, sqnr_max, sqnr_sum; /* over finite values */
	size_t nfinite;
};

/* The name with each run of digits replaced by '#'. */
static char *name_pattern(const char *name)
{
	char *out = lcp_malloc(strlen(name) + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = name; *p;) {
		if (*p >= '0' && *p <= '9') {
			*o++ = '#';
			while (*p >= '0' && *p <= '9')
				p++;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static bool row_add(struct row *w, const struct lcp_tensor_report *t, size_t index)
{
	if (w->nmembers == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 4;
		size_t *m = lcp_realloc(w->members, cap * sizeof *m);
		if (!m)
			return false;
		w->members = m;
		w->cap = cap;
	}
	w->members[w->nmembers++] = index;
	if (w->count == 0) {
		w->bpw_min = w->bpw_max = t->bits_per_weight;
		w->sqnr_min = INFINITY;
		w->sqnr_max = -INFINITY;
	}
	w->count++;
	w->enc_count[enc_index(t->encoding)]++;
	w->bpw_min = fmin(w->bpw_min, t->bits_per_weight);
	w->bpw_max = fmax(w->bpw_max, t->bits_per_weight);
	w->bpw_sum += t->bits_per_weight;
	if (isfinite(t->sqnr_db)) {
		w->sqnr_min = fmin(w->sqnr_min, t->sqnr_db);
		w->sqnr_max = fmax(w->sqnr_max, t->sqnr_db);
		w->sqnr_sum += t->sqnr_db;
		w->nfinite++;
	}
	return true;
}

static void rows_free(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		lcp_free(rows[i].label);
		lcp_free(rows[i].members);
	}
	lcp_free(rows);
}

/* Builds the rows: one per tensor, or one per name pattern when there are
 * more than ROWS_MAX tensors (in order of first appearance). */
static struct row *make_rows(const struct lcp_file_report *r, size_t *nrows, bool *grouped)
{
	struct row *rows = lcp_calloc(r->ntensors ? r->ntensors : 1, sizeof *rows);
	size_t n = 0;

	*grouped = r->ntensors > ROWS_MAX;
	if (!rows)
		return NULL;
	for (size_t i = 0; i < r->ntensors; i++) {
		const struct lcp_tensor_report *t = &r->tensors[i];
		char *label = *grouped ? name_pattern(t->name) : lcp_strdup(t->name);
		size_t j = n;
		if (!label)
			goto fail;
		if (*grouped)
			for (j = 0; j < n && strcmp(rows[j].label, label) != 0; j++)
				;
		if (j == n)
			rows[n++].label = label;
		else
			lcp_free(label);
		if (!row_add(&rows[j], t, i))
			goto fail;
	}
	*nrows = n;
	return rows;
fail:
	rows_free(rows, n);
	return NULL;
}

static int majority(const struct row *w)
{
	int best = 0;
	for (int e = 1; e < NENC; e++)
		if (w->enc_count[e] > w->enc_count[best])
			best = e;
	return best;
}

/* The smallest of 4, 8, 16, 32, 64 bits at or above v. */
static double bpw_axis(double v)
{
	double top = 4;
	while (top < v && top < 64)
		top *= 2;
	return top;
}

static void put_tooltip(FILE *f, const struct lcp_file_report *r, const struct row *w,
			bool grouped)
{
	fputs("<title>", f);
	for (size_t k = 0; k < w->nmembers; k++) {
		const struct lcp_tensor_report *t = &r->tensors[w->members[k]];
		if (k)
			fputc('\n', f);
		put_text(f, t->name, 0);
		if (!grouped || w->nmembers == 1) {
			fprintf(f, " %s [", t->dtype);
			for (uint32_t d = 0; d < t->ndims; d++)
				fprintf(f, "%s%llu", d ? "," : "", (unsigned long long)t->dims[d]);
			fprintf(f, "] %s, %.3f bits/weight", t->encoding, t->bits_per_weight);
			if (isfinite(t->sqnr_db))
				fprintf(f, ", SQNR %.2f dB, cosine %.6f", t->sqnr_db, t->cosine);
			if (t->rank)
				fprintf(f, ", rank %u", t->rank);
		} else {
			fprintf(f, ": %s %.3f bpw", t->encoding, t->bits_per_weight);
		}
	}
	fputs("</title>", f);
}

static void put_row(FILE *f, const struct lcp_file_report *r, const struct row *w, bool grouped,
		    double y, double bpw_top, double sqnr_top)
{
	int enc = majority(w);
	double mean_bpw = w->bpw_sum / (double)w->count;
	double bar_y = y + 3, bar_h = ROW_H - 6;

	fprintf(f, "<g>");
	put_tooltip(f, r, w, grouped);
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"name\">", NAME_X, y + ROW_H - 4);
	put_text(f, w->label, NAME_CHARS);
	if (grouped)
		fprintf(f, " (%zu)", w->count);
	fprintf(f, "</text>");
	/* Encoding label: the only one, or the mix of a group. */
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"enc\" fill=\"%s\">", ENC_X, y + ROW_H - 4,
		colours[enc]);
	if (w->enc_count[enc] == (int)w->count) {
		fputs(encodings[enc], f);
	} else {
		bool first = true;
		for (int e = 0; e < NENC; e++)
			if (w->enc_count[e]) {
				fprintf(f, "%s%s\xc3\x97%d", first ? "" : " ", encodings[e], w->enc_count[e]);
				first = false;
			}
	}
	fprintf(f, "</text>");
	fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", BPW_X,
		bar_y, BPW_W * fmin(mean_bpw / bpw_top, 1.0), bar_h, colours[enc]);
	if (w->count > 1 && w->bpw_max > w->bpw_min)
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"whisker\"/>",
			BPW_X + BPW_W * fmin(w->bpw_min / bpw_top, 1.0),
			BPW_X + BPW_W * fmin(w->bpw_max / bpw_top, 1.0), y + ROW_H / 2.0,
			y + ROW_H / 2.0);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"val\">%.2f</text>",
		BPW_X + BPW_W * fmin(mean_bpw / bpw_top, 1.0) + 4, y + ROW_H - 4, mean_bpw);
	if (w->nfinite) {
		double mean = w->sqnr_sum / (double)w->nfinite;
		double len = SQNR_W * fmax(0.0, fmin(mean / sqnr_top, 1.0));
		fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
			SQNR_X, bar_y, len, bar_h, colours[enc]);
		if (w->nfinite > 1 && w->sqnr_max > w->sqnr_min)
			fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
				   "class=\"whisker\"/>",
				SQNR_X + SQNR_W * fmax(0.0, fmin(w->sqnr_min / sqnr_top, 1.0)),
				SQNR_X + SQNR_W * fmax(0.0, fmin(w->sqnr_max / sqnr_top, 1.0)),
				y + ROW_H / 2.0, y + ROW_H / 2.0);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"val\">%.1f%s</text>",
			SQNR_X + len + 4, y + ROW_H - 4, mean,
			w->nfinite < w->count ? " (+exact)" : "");
	} else {
		/* Infinite SQNR: a hatched bar across the axis. */
		fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
			   "fill=\"url(#exact)\" stroke=\"%s\"/>",
			SQNR_X, bar_y, SQNR_W, bar_h, colours[NENC - 1]);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"val\">\xe2\x88\x9e</text>", SQNR_X + SQNR_W + 4,
			y + ROW_H - 4);
	}
	fprintf(f, "</g>\n");
}

/* Axis ticks and grid lines for a bar area from x0, w wide, for 0..top. */
static void put_axis(FILE *f, int x0, int w, double top, double step, const char *unit,
		     double y0, double y1)
{
	for (double v = 0; v <= top + 1e-9; v += step) {
		double x = x0 + w * v / top;
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", x, x,
			y0, y1);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\">%g%s</text>\n", x, y0 - 4, v,
			v + step > top + 1e-9 ? unit : "");
	}
}

static void human_size(uint64_t b, char *out, size_t len)
{
	if (b < 1024)
		snprintf(out, len, "%llu B", (unsigned long long)b);
	else if (b < (1ull << 20))
		snprintf(out, len, "%.1f KiB", (double)b / 1024.0);
	else if (b < (1ull << 30))
		snprintf(out, len, "%.1f MiB", (double)b / 1048576.0);
	else
		snprintf(out, len, "%.2f GiB", (double)b / 1073741824.0);
}

int lcp_cli_write_svg(FILE *f, const char *path, const char *state,
		      const struct lcp_file_report *r)
{
	size_t nrows = 0;
	bool grouped;
	struct row *rows = make_rows(r, &nrows, &grouped);
	double bpw_max = 0, sqnr_max = 0;
	int totals[NENC] = {0};
	char lg[32], sd[32];

	if (!rows)
		return -1;
	for (size_t i = 0; i < r->ntensors; i++) {
		const struct lcp_tensor_report *t = &r->tensors[i];
		bpw_max = fmax(bpw_max, t->bits_per_weight);
		if (isfinite(t->sqnr_db))
			sqnr_max = fmax(sqnr_max, t->sqnr_db);
		totals[enc_index(t->encoding)]++;
	}
	double bpw_top = bpw_axis(bpw_max);
	double sqnr_top = fmax(SQNR_FLOOR_DB, 10.0 * ceil(sqnr_max / 10.0));
	double rows_end = TOP + (double)nrows * ROW_H;
	int height = (int)rows_end + 30;

	human_size(r->logical_size, lg, sizeof lg);
	human_size(r->stored_size, sd, sizeof sd);
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
		   "height=\"%d\" viewBox=\"0 0 %d %d\">\n",
		WIDTH, height, WIDTH, height);
	fprintf(f, "<style>text{font-family:sans-serif;font-size:11px;fill:#222}"
		   ".name{font-family:monospace}.enc{font-weight:bold}.val{font-size:10px;fill:#444}"
		   ".tick{font-size:10px;fill:#666;text-anchor:middle}.head{font-size:12px}"
		   ".title{font-size:15px;font-weight:bold}"
		   ".grid{stroke:#e3e3e3;stroke-width:1}.whisker{stroke:#111;stroke-width:1.5}"
		   "</style>\n"
		   "<defs><pattern id=\"exact\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
		   "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f0f0f0\"/>"
		   "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"%s\" stroke-width=\"2\"/>"
		   "</pattern></defs>\n"
		   "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
		colours[NENC - 1]);
	fprintf(f, "<text x=\"%d\" y=\"22\" class=\"title\">", NAME_X);
	put_text(f, path, 0);
	fprintf(f, "</text>\n<text x=\"%d\" y=\"42\" class=\"head\">%s, %s: %s read as %s stored "
		   "(%.2fx); %zu tensors: ",
		NAME_X, lcp_format_name(r->format), state, lg, sd,
		r->stored_size ? (double)r->logical_size / (double)r->stored_size : 0.0, r->ntensors);
	for (int e = 0; e < NENC; e++)
		fprintf(f, "%s%d %s", e ? ", " : "", totals[e], encodings[e]);
	fprintf(f, "</text>\n");
	if (grouped)
		fprintf(f, "<text x=\"%d\" y=\"58\" class=\"head\">One row per name pattern (# stands "
			   "for any number, the count follows the name): the bar is the mean, the "
			   "line spans min to max.</text>\n",
			NAME_X);
	/* Legend. */
	for (int e = 0; e < NENC; e++) {
		int x = NAME_X + e * 130;
		fprintf(f, "<rect x=\"%d\" y=\"70\" width=\"14\" height=\"12\" fill=\"%s\"/>"
			   "<text x=\"%d\" y=\"80\">%s</text>\n",
			x, colours[e], x + 19, encodings[e]);
	}
	fprintf(f, "<text x=\"%d\" y=\"80\">exact: stored as in the file; lossless: "
		   "entropy-coded, bit-exact; hatched SQNR: no error (\xe2\x88\x9e)</text>\n",
		NAME_X + NENC * 130);
	fprintf(f, "<text x=\"%d\" y=\"108\" class=\"head\">tensor</text>"
		   "<text x=\"%d\" y=\"108\" class=\"head\">encoding</text>"
		   "<text x=\"%d\" y=\"102\" class=\"head\">bits per weight (all stored bytes)</text>"
		   "<text x=\"%d\" y=\"102\" class=\"head\">SQNR, dB (higher is closer)</text>\n",
		NAME_X, ENC_X, BPW_X, SQNR_X);
	put_axis(f, BPW_X, BPW_W, bpw_top, bpw_top / 8, "", TOP - 8, rows_end);
	put_axis(f, SQNR_X, SQNR_W, sqnr_top, 10, " dB", TOP - 8, rows_end);
	for (size_t i = 0; i < nrows; i++) {
		if (i % 2)
			fprintf(f, "<rect x=\"0\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
				   "fill=\"#000\" fill-opacity=\"0.035\"/>\n",
				TOP + (double)i * ROW_H, WIDTH, ROW_H);
		put_row(f, r, &rows[i], grouped, TOP + (double)i * ROW_H, bpw_top, sqnr_top);
	}
	fprintf(f, "</svg>\n");
	rows_free(rows, nrows);
	return ferror(f) ? -1 : 0;
}
