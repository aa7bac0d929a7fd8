/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group quantization: scale search and reference dequantization. See quant.h
 * for the reconstruction formula, which is the on-disk contract.
 */
#include "codec/quant.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/quant_dq.h"

/* 2^(k/256), k = 0..255, as binary32 literals: pinned so the scale grid
 * never depends on a libm's exp2f. The 16-step grid uses every 16th entry. */
static const float frac256[256] = {
	1.00000000000000000000f, 1.00271127505020248543f, 1.00542990111280282135f, 1.00815589811841751578f,
	1.01088928605170046002f, 1.01363008495148943884f, 1.01637831491095303794f, 1.01913399607773794968f,
	1.02189714865411667823f, 1.02466779289713564515f, 1.02744594911876369654f, 1.03023163768604101287f,
	1.03302487902122842250f, 1.03582569360195712003f, 1.03863410196137879061f, 1.04145012468831614126f,
	1.04427378242741384032f, 1.04710509587928986613f, 1.04994408580068726608f, 1.05279077300462632712f,
	1.05564517836055715881f, 1.05850732279451269011f, 1.06137722728926208095f, 1.06425491288446454979f,
	1.06714040067682361817f, 1.07003371182024177354f, 1.07293486752597555139f, 1.07584388906279103780f,
	1.07876079775711979374f, 1.08168561499321520194f, 1.08461836221330923782f, 1.08755906091776966535f,
	1.09050773266525765921f, 1.09346439907288585423f, 1.09642908181637682339f, 1.09940180263022198546f,
	1.10238258330784094356f, 1.10537144570174125559f, 1.10836841172367863801f, 1.11137350334481760385f,
	1.11438674259589253631f, 1.11740815156736919905f, 1.12043775240960668443f, 1.12347556733301980073f,
	1.12652161860824189979f, 1.12957592856628814600f, 1.13263851959871922799f, 1.13570941415780551424f,
	1.13878863475669165370f, 1.14187620396956162271f, 1.14497214443180421939f, 1.14807647884017900678f,
	1.15118922995298270582f, 1.15431042059021603955f, 1.15744007363375102961f, 1.16057821202749874637f,
	1.16372485877757751381f, 1.16688003695248157056f, 1.17004376968325018808f, 1.17321608016363724753f,
	1.17639699165028127628f, 1.17958652746287594549f, 1.18278471098434102992f, 1.18599156566099383137f,
	1.18920711500272106672f, 1.19243138258315122214f, 1.19566439203982737458f, 1.19890616707438048177f,
	1.20215673145270314210f, 1.20541610900512382560f, 1.20868432362658157735f, 1.21196139927680119447f,
	1.21524735998046887812f, 1.21854222982740836176f, 1.22184603297275751690f, 1.22515879363714543771f,
	1.22848053610687000569f, 1.23181128473407593588f, 1.23515106393693330569f, 1.23849989819981656783f,
	1.24185781207348404859f, 1.24522483017525793278f, 1.24860097718920473662f, 1.25198627786631627006f,
	1.25538075702469108958f, 1.25878443954971644308f, 1.26219735039425070801f, 1.26561951457880632420f,
	1.26905095719173322255f, 1.27249170338940275124f, 1.27594177839639210038f, 1.27940120750566922691f,
	1.28287001607877828073f, 1.28634822954602553360f, 1.28983587340666581223f, 1.29333297322908943673f,
	1.29683955465100966593f, 1.30035564337965065101f, 1.30388126519193589857f, 1.30741644593467724480f,
	1.31096121152476434192f, 1.31451558794935465849f, 1.31807960126606399469f, 1.32165327760315751433f,
	1.32523664315974129463f, 1.32882972420595439548f, 1.33243254708316144935f, 1.33604513820414577344f,
	1.33966752405330300536f, 1.34329973118683526382f, 1.34694178623294583579f, 1.35059371589203439141f,
	1.35425554693689272830f, 1.35792730621290104649f, 1.36160902063822475559f, 1.36530071720401181543f,
	1.36900242297459061193f, 1.37271416508766836928f, 1.37643597075453010022f, 1.38016786726023809558f,
	1.38390988196383195487f, 1.38766204229852915904f, 1.39142437577192618715f, 1.39519690996620017828f,
	1.39897967253831114021f, 1.40277269122020470637f, 1.40657599381901544248f, 1.41038960821727070441f,
	1.41421356237309504880f, 1.41804788432041519784f, 1.42189260216916555981f, 1.42574774410549430681f,
	1.42961333839197001124f, 1.43348941336778884252f, 1.43737599744898232560f, 1.44127311912862566273f,
	1.44518080697704662004f, 1.44909908964203498052f, 1.45302799584905256485f, 1.45696755440144382163f,
	1.46091779418064698865f, 1.46487874414640582659f, 1.46885043333698192686f, 1.47283289086936759501f,
	1.47682614593949931139f, 1.48083022782247177046f, 1.48484516587275250054f, 1.48887098952439706539f,
	1.49290772829126484920f, 1.49695541176723542678f, 1.50101406962642552027f, 1.50508373162340654408f,
	1.50916442759342273977f, 1.51325618745260990219f, 1.51735904119821469881f, 1.52147301890881458353f,
	1.52559815074453830685f, 1.52973446694728702389f, 1.53388199784095600180f, 1.53804077383165692843f,
	1.54221082540794082361f, 1.54639218314102155486f, 1.55058487768499995912f, 1.55478893977708857212f,
	1.55900440023783696703f, 1.56323128997135770415f, 1.56746963996555289306f, 1.57171948129234136925f,
	1.57598084510788648646f, 1.58025376265282452680f, 1.58453826525249373012f, 1.58883438431716394423f,
	1.59314215134226689794f, 1.59746159790862709826f, 1.60179275568269335379f, 1.60613565641677092570f,
	1.61049033194925430818f, 1.61485681420486064008f, 1.61923513519486374930f, 1.62362532701732883180f,
	1.62802742185734776685f, 1.63244145198727507034f, 1.63686744976696448777f, 1.64130544764400622871f,
	1.64575547815396484452f, 1.65021757392061775097f, 1.65469176765619439757f, 1.65917809216161608540f,
	1.66367658032673643505f, 1.66818726513058250666f, 1.67271017964159657362f, 1.67724535701787855179f,
	1.68179283050742908606f, 1.68635263344839329593f, 1.69092479926930518197f, 1.69550936148933269498f,
	1.70010635371852346950f, 1.70471580965805122367f, 1.70933776310046282710f, 1.71397224792992603860f,
	1.71861929812247791563f, 1.72327894774627389722f, 1.72795123096183756224f, 1.73263618202231106488f,
	1.73733383527370624899f, 1.74204422515515644346f, 1.74676738619916894008f, 1.75150335303187815610f,
	1.75625216037329948311f, 1.76101384303758382416f, 1.76578843593327282104f, 1.77057597406355477354f,
	1.77537649252652125255f, 1.78019002651542440896f, 1.78501661131893498014f, 1.78985628232140099601f,
	1.79470907500310718643f, 1.79957502494053509205f, 1.80445416780662388031f, 1.80934653937103186854f,
	1.81425217550039875625f, 1.81917111215860856830f, 1.82410338540705331100f, 1.82904903140489734309f,
	1.83400808640934246349f, 1.83898058677589371771f, 1.84396656895862592507f, 1.84896606951045092839f,
	1.85397912508338556839f, 1.85900577242882038462f, 1.86404604839778904481f, 1.86909998994123850489f,
	1.87416763411029990133f, 1.87924901805656017804f, 1.88434417903233444969f, 1.88945315439093910347f,
	1.89457598158696564134f, 1.89971269817655526472f, 1.90486334181767420365f, 1.91002795027038979244f,
	1.91520656139714729387f, 1.92039921316304747390f, 1.92560594363612492896f, 1.93082679098762716790f,
	1.93606179349229445060f, 1.94131098952864038522f, 1.94657441757923328634f, 1.95185211623097829591f,
	1.95714412417540026902f, 1.96245048020892742676f, 1.96777122323317577811f, 1.97310639225523431294f,
	1.97845602638795096826f, 1.98382016485021936986f, 1.98919884696726635130f, 1.99459211217094025252f,
};

/* Search window in 1/16 octaves around the group's natural scale: up to
 * SEARCH_UP steps larger (never helps much: the range is already covered)
 * and SEARCH_DOWN smaller (clipping the extremes in exchange for a finer
 * step, which is where the MSE optimum usually lies for bell-shaped groups). */
#define SEARCH_UP 1
#define SEARCH_DOWN 4
/* At 8 bits the grid is fine enough that clipping rarely pays (measured:
 * 4 steps down instead of 1 gains < 0.01 dB on the shared weights at 1.6x
 * the encode time). */
#define SEARCH_DOWN_8BIT 1
/* Headroom of the super-scale over the largest natural scale, in codes, so
 * even that group can search SEARCH_UP steps up. */
#define SUPER_HEADROOM 2
/* Fine candidates on each side of the natural scale on a 256-step grid. */
#define FINE_STEPS 2

uint16_t lcp_qscale_max(const struct lcp_qparams *p)
{
	return p->scale_log2_steps == 8 ? 65535 : 255;
}

float lcp_qscale_frac(const struct lcp_qparams *p, unsigned k)
{
	return p->super * frac256[k << (8 - p->scale_log2_steps)];
}

float lcp_qscale_pow2(float v, unsigned oct)
{
	/* ldexpf is exact; for a normal result it only lowers the exponent
	 * field, which is done inline here (ldexpf costs a libm call per group). */
	uint32_t b;
	memcpy(&b, &v, sizeof b);
	uint32_t ex = (b >> 23) & 0xffu;
	if (ex != 0xffu && ex > oct) {
		b -= oct << 23;
		memcpy(&v, &b, sizeof v);
		return v;
	}
	return ldexpf(v, -(int)oct);
}

float lcp_qscale(const struct lcp_qparams *p, uint16_t code)
{
	if (code == 0)
		return 0.0f;
	unsigned lg = p->scale_log2_steps;
	unsigned steps = 1u << lg;
	unsigned e = (unsigned)lcp_qscale_max(p) - code; /* steps below super */
	unsigned oct = (e + steps - 1) >> lg;
	unsigned k = (oct << lg) - e;
	return lcp_qscale_pow2(lcp_qscale_frac(p, k), oct);
}

/* Smallest and largest of x and 0 (a grid always holds zero exactly). */
static void range_with_zero(const float *x, uint32_t n, float *lo, float *hi)
{
	*lo = 0.0f;
	*hi = 0.0f;
	for (uint32_t i = 0; i < n; i++) {
		if (x[i] < *lo)
			*lo = x[i];
		if (x[i] > *hi)
			*hi = x[i];
	}
}

static float natural_scale(const float *x, uint32_t n, uint8_t bits, bool symmetric)
{
	float lo, hi;
	range_with_zero(x, n, &lo, &hi);
	float levels = (float)(1u << bits);
	if (symmetric)
		return fmaxf(-lo, hi) / (levels * 0.5f);
	return (hi - lo) / (levels - 1.0f);
}

float lcp_quant_super(const float *x, uint64_t n, uint32_t group_size, uint8_t bits,
		      bool symmetric)
{
	float best = 0.0f;
	for (uint64_t g = 0; g < n; g += group_size) {
		uint32_t len = (uint32_t)(n - g < group_size ? n - g : group_size);
		float s = natural_scale(x + g, len, bits, symmetric);
		if (s > best)
			best = s;
	}
	if (best == 0.0f)
		return 0.0f;
	float super = best * frac256[16 * SUPER_HEADROOM];
	/* Keep the super-scale finite even for values near FLT_MAX. */
	return isfinite(super) ? super : best;
}

/* Steps below super for a scale s > 0, clamped to the grid [0, cmax - 1]. */
static int steps_below(const struct lcp_qparams *p, float s)
{
	int emax = (int)lcp_qscale_max(p) - 1;
	float r = p->super / s;
	if (!(r < 3.0e38f))
		return emax;
	float e = (float)(1u << p->scale_log2_steps) * log2f(r);
	if (e <= 0.0f)
		return 0;
	if (e >= (float)emax)
		return emax;
	return (int)lrintf(e);
}

/* Round to nearest even without a libm call (rintf is one unless the target
 * has SSE4.1): adding and subtracting 1.5 * 2^23 leaves the integer part,
 * rounded by the FPU's default mode, for |t| < 2^22. Larger magnitudes, inf
 * and NaN come out large or NaN, which the callers clamp. */
static inline float round_even(float t)
{
	const float magic = 12582912.0f;
	return (t + magic) - magic;
}

/* Codes and squared error of one group for a given signed scale and offset.
 * The codes are exact whatever the path; the error is summed four lanes at a
 * time under SSE2 (a different but fixed order: it only ranks candidate
 * scales and feeds the encoder's estimates, so it must be deterministic, not
 * equal to the scalar sum). */
static float try_scale(const float *x, uint32_t n, float sd, int off, int qmax, uint8_t *codes)
{
	float inv = 1.0f / sd;
	float err = 0.0f;
	uint32_t i = 0;
#ifdef __SSE2__
	const __m128 magic = _mm_set1_ps(12582912.0f), zero = _mm_setzero_ps();
	__m128 vinv = _mm_set1_ps(inv), vsd = _mm_set1_ps(sd), voff = _mm_set1_ps((float)off);
	__m128 vmax = _mm_set1_ps((float)qmax), acc = zero;
	for (; i + 4 <= n; i += 4) {
		__m128 xv = _mm_loadu_ps(x + i);
		__m128 q = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(xv, vinv), magic), magic);
		q = _mm_add_ps(q, voff);
		/* maxps returns its second operand when the first is NaN: the
		 * scalar loop's !(q >= 0) case. */
		q = _mm_min_ps(_mm_max_ps(q, zero), vmax);
		__m128 d = _mm_sub_ps(xv, _mm_mul_ps(vsd, _mm_sub_ps(q, voff)));
		acc = _mm_add_ps(acc, _mm_mul_ps(d, d));
		if (codes) {
			__m128i c = _mm_cvttps_epi32(q);
			c = _mm_packus_epi16(_mm_packs_epi32(c, c), c);
			uint32_t w = (uint32_t)_mm_cvtsi128_si32(c);
			memcpy(codes + i, &w, sizeof w);
		}
	}
	float lanes[4];
	_mm_storeu_ps(lanes, acc);
	err = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
	for (; i < n; i++) {
		float q = round_even(x[i] * inv) + (float)off;
		if (!(q >= 0.0f)) /* also catches NaN from an infinite inverse */
			q = 0.0f;
		if (q > (float)qmax)
			q = (float)qmax;
		int c = (int)q;
		float d = x[i] - sd * (float)(c - off);
		err += d * d;
		if (codes)
			codes[i] = (uint8_t)c;
	}
	return err;
}

static float zero_group(uint32_t n, int off, uint8_t *codes, uint16_t *scode, uint8_t *aux)
{
	for (uint32_t i = 0; i < n; i++)
		codes[i] = (uint8_t)off;
	*scode = 0;
	*aux = 0;
	return 0.0f;
}

float lcp_quant_group(const float *x, uint32_t n, const struct lcp_qparams *p, uint8_t *codes,
		      uint16_t *scode, uint8_t *aux)
{
	int qmax = (1 << p->bits) - 1;
	int half = 1 << (p->bits - 1);
	float lo, hi;
	range_with_zero(x, n, &lo, &hi);
	float nat = natural_scale(x, n, p->bits, p->symmetric);
	if (nat == 0.0f || p->super == 0.0f)
		return zero_group(n, p->symmetric ? half : 0, codes, scode, aux);

	/* Candidates in units of 1/16 octave; a finer grid also tries the
	 * fine steps next to the natural scale, where its optimum usually is. */
	int emax = (int)lcp_qscale_max(p) - 1;
	int unit = 1 << (p->scale_log2_steps - 4);
	int e0 = steps_below(p, nat);
	int cand[SEARCH_UP + SEARCH_DOWN + 1 + 2 * FINE_STEPS];
	int ncand = 0;
	int down = p->bits == 8 ? SEARCH_DOWN_8BIT : SEARCH_DOWN;
	for (int j = -SEARCH_UP; j <= down; j++)
		cand[ncand++] = e0 + j * unit;
	for (int j = 1; unit > 1 && j <= FINE_STEPS; j++) {
		cand[ncand++] = e0 - j * unit / (2 * FINE_STEPS);
		cand[ncand++] = e0 + j * unit / (2 * FINE_STEPS);
	}
	/* Symmetric: negative scale when the largest magnitude is positive, so
	 * it lands on the -2^(bits-1) side that has one more level. */
	bool neg = p->symmetric && hi > -lo;
	float best_err = INFINITY;
	int best_e = -1, best_off = 0;
	for (int ci = 0; ci < ncand; ci++) {
		int e = cand[ci] < 0 ? 0 : cand[ci] > emax ? emax : cand[ci];
		float s = lcp_qscale(p, (uint16_t)(emax + 1 - e));
		if (!(s > 0.0f))
			continue;
		int offs[2];
		int noffs;
		if (p->symmetric) {
			offs[0] = half;
			noffs = 1;
		} else {
			/* Zero point pinning the low end, or the high end. */
			float zl = rintf(-lo / s), zh = (float)qmax - rintf(hi / s);
			zl = zl < 0.0f ? 0.0f : zl > (float)qmax ? (float)qmax : zl;
			zh = zh < 0.0f ? 0.0f : zh > (float)qmax ? (float)qmax : zh;
			offs[0] = (int)zl;
			offs[1] = (int)zh;
			noffs = offs[1] == offs[0] ? 1 : 2;
		}
		for (int k = 0; k < noffs; k++) {
			float err = try_scale(x, n, neg ? -s : s, offs[k], qmax, NULL);
			if (err < best_err) {
				best_err = err;
				best_e = e;
				best_off = offs[k];
			}
		}
	}
	if (best_e < 0)
		return zero_group(n, p->symmetric ? half : 0, codes, scode, aux);
	float s = lcp_qscale(p, (uint16_t)(emax + 1 - best_e));
	*scode = (uint16_t)(emax + 1 - best_e);
	*aux = p->symmetric ? (uint8_t)neg : (uint8_t)best_off;
	return try_scale(x, n, neg ? -s : s, best_off, qmax, codes);
}

uint16_t lcp_quant_scale_code(const struct lcp_qparams *p, float step, float *scale)
{
	*scale = 0.0f;
	if (!(step > 0.0f) || p->super == 0.0f)
		return 0;
	uint16_t c = (uint16_t)(lcp_qscale_max(p) - steps_below(p, step));
	float s = lcp_qscale(p, c);
	if (!(s > 0.0f))
		return 0;
	*scale = s;
	return c;
}

size_t lcp_quant_dq_work_bytes(uint32_t n)
{
	/* per element: D and 1/D (floats), a byte of Viterbi decisions and the
	 * four candidate codes (signed bytes), in steps of 16 */
	uint32_t steps = (n + LCP_DQ_CHAINS - 1) / LCP_DQ_CHAINS;
	return (size_t)steps * LCP_DQ_CHAINS * (2 * sizeof(float) + 1 + 4);
}

/* Predecessor (state << 1 | parity) of state s through decision bit b:
 * every state has two, one per parity (the inverse of lcp_dq_next). */
static const uint8_t dq_pred[4][2] = {
	{0 << 1 | 0, 1 << 1 | 1}, {2 << 1 | 0, 3 << 1 | 1}, {0 << 1 | 1, 1 << 1 | 0}, {2 << 1 | 1, 3 << 1 | 0},
};

/*
 * One Viterbi step of one chain, in scalar form (dq_step4 computes exactly
 * the same, operation for operation, for 4 chains under SSE2). v = x / D,
 * clamped, gives the nearest level of each class q and code parity p
 * (candidate 2q + p): class 0 levels are 2k, i.e. 4Z for even k and 4Z + 2
 * for odd k; class 1 levels are 0 and +-(2|k| - 1), i.e. 0, 3, 7, 11...
 * for even k and 1, 5, 9... for odd k (exact arithmetic: small integers,
 * quarters). A state's two predecessors are one of each parity of the same
 * class (dq_pred), so the step needs only these four. c[s] (stride apart)
 * are the states' least squared errors so far; dec gets one bit per new
 * state, set when its second predecessor is strictly better; cand the four
 * candidates' codes k (signed), 4 chains apart.
 */
static inline void dq_step1(float x, float d, float il, float *c, size_t stride, uint8_t *dec,
			    int8_t *cand)
{
	float v = x * il;
	v = v < DQ_MAX_V ? v : DQ_MAX_V;
	v = v > -DQ_MAX_V ? v : -DQ_MAX_V;
	float a = fabsf(v), sd = v < 0.0f ? -d : d, m[4], e[4];
	m[0] = 4.0f * round_even(a * 0.25f);
	m[1] = 4.0f * round_even((a - 2.0f) * 0.25f) + 2.0f;
	m[2] = a < 1.5f ? 0.0f : 4.0f * round_even((a + 1.0f) * 0.25f) - 1.0f;
	m[3] = 4.0f * round_even((a - 1.0f) * 0.25f) + 1.0f;
	for (unsigned k = 0; k < 4; k++) {
		float r = x - sd * m[k];
		e[k] = r * r;
		int code = (int)((m[k] + (float)(k >> 1)) * 0.5f); /* class 1: (|L| + 1) / 2 */
		cand[4 * k] = (int8_t)(v < 0.0f ? -code : code);
	}
	if (!(d > 0.0f)) { /* a zero step: code 0 (even) only */
		e[1] = INFINITY;
		e[3] = INFINITY;
	}
	float *c0 = c, *c1 = c + stride, *c2 = c + 2 * stride, *c3 = c + 3 * stride;
	float a0 = *c0 + e[0], b0 = *c1 + e[1], a2 = *c0 + e[1], b2 = *c1 + e[0];
	float a1 = *c2 + e[2], b1 = *c3 + e[3], a3 = *c2 + e[3], b3 = *c3 + e[2];
	*dec = (uint8_t)((unsigned)(b0 < a0) | (unsigned)(b1 < a1) << 1 | (unsigned)(b2 < a2) << 2 |
			 (unsigned)(b3 < a3) << 3);
	*c0 = b0 < a0 ? b0 : a0;
	*c1 = b1 < a1 ? b1 : a1;
	*c2 = b2 < a2 ? b2 : a2;
	*c3 = b3 < a3 ? b3 : a3;
}

#ifdef __SSE2__
/* The levels 2k - sgn(k) * cls of 8 codes (k = code - off) as two vectors
 * of 4 binary32 (exact): in 16-bit lanes, sgn(k) from two compares (-1/0
 * masks, sgn = neg - pos), L = 2k - (sgn & -cls), widened to 32 bits. */
static inline void dq_levels8(const uint8_t *codes, const uint8_t *cls, int off, __m128 *lo,
			      __m128 *hi)
{
	const __m128i z = _mm_setzero_si128();
	__m128i c = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(const void *)codes), z);
	__m128i q = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(const void *)cls), z);
	__m128i k = _mm_sub_epi16(c, _mm_set1_epi16((short)off));
	__m128i sgn = _mm_sub_epi16(_mm_cmplt_epi16(k, z), _mm_cmpgt_epi16(k, z));
	__m128i l = _mm_sub_epi16(_mm_add_epi16(k, k), _mm_and_si128(sgn, _mm_sub_epi16(z, q)));
	__m128i sign = _mm_srai_epi16(l, 15);
	*lo = _mm_cvtepi32_ps(_mm_unpacklo_epi16(l, sign));
	*hi = _mm_cvtepi32_ps(_mm_unpackhi_epi16(l, sign));
}

static inline __m128 round_even4(__m128 t)
{
	const __m128 magic = _mm_set1_ps(12582912.0f);
	return _mm_sub_ps(_mm_add_ps(t, magic), magic);
}

/* dq_step1 for 4 chains: the same operations lane by lane (min_ps(b, a)
 * is b < a ? b : a, blends by compare masks). */
static inline void dq_step4(const float *x, const float *d, const float *il, float *c, size_t stride,
			    uint8_t *dec, int8_t *cand)
{
	const __m128 vmax = _mm_set1_ps(DQ_MAX_V), vmin = _mm_set1_ps(-DQ_MAX_V), zero = _mm_setzero_ps();
	const __m128 quarter = _mm_set1_ps(0.25f), half = _mm_set1_ps(0.5f), four = _mm_set1_ps(4.0f);
	const __m128 one = _mm_set1_ps(1.0f), two = _mm_set1_ps(2.0f);
	const __m128 signbit = _mm_set1_ps(-0.0f), inf = _mm_set1_ps(INFINITY);
	__m128 vx = _mm_loadu_ps(x), vd = _mm_loadu_ps(d);
	__m128 v = _mm_mul_ps(vx, _mm_loadu_ps(il));
	v = _mm_max_ps(_mm_min_ps(v, vmax), vmin);
	__m128 neg = _mm_cmplt_ps(v, zero), a = _mm_andnot_ps(signbit, v);
	__m128 sd = _mm_or_ps(_mm_and_ps(neg, _mm_sub_ps(zero, vd)), _mm_andnot_ps(neg, vd));
	__m128 m[4], e[4];
	m[0] = _mm_mul_ps(four, round_even4(_mm_mul_ps(a, quarter)));
	m[1] = _mm_add_ps(_mm_mul_ps(four, round_even4(_mm_mul_ps(_mm_sub_ps(a, two), quarter))), two);
	m[2] = _mm_andnot_ps(_mm_cmplt_ps(a, _mm_set1_ps(1.5f)),
			     _mm_sub_ps(_mm_mul_ps(four, round_even4(_mm_mul_ps(_mm_add_ps(a, one), quarter))), one));
	m[3] = _mm_add_ps(_mm_mul_ps(four, round_even4(_mm_mul_ps(_mm_sub_ps(a, one), quarter))), one);
	__m128i k[4];
	for (unsigned j = 0; j < 4; j++) {
		__m128 r = _mm_sub_ps(vx, _mm_mul_ps(sd, m[j]));
		e[j] = _mm_mul_ps(r, r);
		__m128i code = _mm_cvttps_epi32(_mm_mul_ps(j >> 1 ? _mm_add_ps(m[j], one) : m[j], half));
		__m128i nmask = _mm_castps_si128(neg);
		k[j] = _mm_sub_epi32(_mm_xor_si128(code, nmask), nmask); /* negate where v < 0 */
	}
	__m128 pos_step = _mm_cmpgt_ps(vd, zero);
	e[1] = _mm_or_ps(_mm_and_ps(pos_step, e[1]), _mm_andnot_ps(pos_step, inf));
	e[3] = _mm_or_ps(_mm_and_ps(pos_step, e[3]), _mm_andnot_ps(pos_step, inf));
	__m128i packed = _mm_packs_epi16(_mm_packs_epi32(k[0], k[1]), _mm_packs_epi32(k[2], k[3]));
	_mm_storeu_si128((__m128i *)(void *)cand, packed);
	__m128 c0 = _mm_loadu_ps(c), c1 = _mm_loadu_ps(c + stride);
	__m128 c2 = _mm_loadu_ps(c + 2 * stride), c3 = _mm_loadu_ps(c + 3 * stride);
	__m128 a0 = _mm_add_ps(c0, e[0]), b0 = _mm_add_ps(c1, e[1]);
	__m128 a2 = _mm_add_ps(c0, e[1]), b2 = _mm_add_ps(c1, e[0]);
	__m128 a1 = _mm_add_ps(c2, e[2]), b1 = _mm_add_ps(c3, e[3]);
	__m128 a3 = _mm_add_ps(c2, e[3]), b3 = _mm_add_ps(c3, e[2]);
	__m128i bits = _mm_or_si128(
		_mm_or_si128(_mm_and_si128(_mm_castps_si128(_mm_cmplt_ps(b0, a0)), _mm_set1_epi32(1)),
			     _mm_and_si128(_mm_castps_si128(_mm_cmplt_ps(b1, a1)), _mm_set1_epi32(2))),
		_mm_or_si128(_mm_and_si128(_mm_castps_si128(_mm_cmplt_ps(b2, a2)), _mm_set1_epi32(4)),
			     _mm_and_si128(_mm_castps_si128(_mm_cmplt_ps(b3, a3)), _mm_set1_epi32(8))));
	bits = _mm_packus_epi16(_mm_packs_epi32(bits, bits), bits);
	uint32_t w = (uint32_t)_mm_cvtsi128_si32(bits);
	memcpy(dec, &w, sizeof w);
	_mm_storeu_ps(c, _mm_min_ps(b0, a0));
	_mm_storeu_ps(c + stride, _mm_min_ps(b1, a1));
	_mm_storeu_ps(c + 2 * stride, _mm_min_ps(b2, a2));
	_mm_storeu_ps(c + 3 * stride, _mm_min_ps(b3, a3));
}
#endif

bool lcp_quant_dq_search_available(enum lcp_dq_search form)
{
	switch (form) {
	case LCP_DQ_SEARCH_SCALAR:
		return true;
	case LCP_DQ_SEARCH_SSE2:
#ifdef __SSE2__
		return true;
#else
		return false;
#endif
#ifdef LCP_HAVE_DQ_X86
	case LCP_DQ_SEARCH_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2");
	case LCP_DQ_SEARCH_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl");
#endif
	default:
		return false;
	}
}

static const char *const search_names[] = {"scalar", "sse2", "avx2", "avx512"};

enum lcp_dq_search lcp_quant_dq_search_named(const char *name)
{
	for (int f = LCP_DQ_SEARCH_AVX512; name && f >= LCP_DQ_SEARCH_SCALAR; f--)
		if (strcmp(name, search_names[f]) == 0 &&
		    lcp_quant_dq_search_available((enum lcp_dq_search)f))
			return (enum lcp_dq_search)f;
	return LCP_DQ_SEARCH_NONE;
}

const char *lcp_quant_dq_search_name(enum lcp_dq_search form)
{
	return form >= LCP_DQ_SEARCH_SCALAR && form <= LCP_DQ_SEARCH_AVX512 ? search_names[form]
									    : "none";
}

static enum lcp_dq_search chosen_search;
static pthread_once_t choose_search_once = PTHREAD_ONCE_INIT;

/* LCPFS_DQ_SEARCH's form when this CPU has it, else the fastest it has
 * (all give the same codes: the choice only changes the speed). */
static void choose_search(void)
{
	chosen_search = lcp_quant_dq_search_named(getenv("LCPFS_DQ_SEARCH"));
	for (int f = LCP_DQ_SEARCH_AVX512; chosen_search == LCP_DQ_SEARCH_NONE; f--)
		chosen_search = lcp_quant_dq_search_named(search_names[f]);
}

enum lcp_dq_search lcp_quant_dq_search(void)
{
	pthread_once(&choose_search_once, choose_search);
	return chosen_search;
}

/*
 * The Viterbi search runs the 16 chains side by side: step t holds
 * elements 16t .. 16t + 15 of the block, one per chain, and each chain's
 * states keep the least squared error of any code sequence ending in them
 * (dq_step1). The codes are read back from the end of each chain, from its
 * cheapest state (the first on a tie). The whole steps go through the
 * form's own loops (quant_dq.h), the last partial step through dq_step1;
 * the error is summed the same way by every form.
 */
float lcp_quant_dq_block_with(enum lcp_dq_search form, const float *x, uint32_t n,
			      const float *delta, uint32_t group_size, uint32_t phase,
			      uint8_t *codes, void *work)
{
	enum { L = LCP_DQ_CHAINS };
	uint32_t padded = (n + L - 1) / L * L, steps = n / L;
	float *dl = work, *il = dl + padded;
	uint8_t *dec = (uint8_t *)(il + padded);
	int8_t *cand = (int8_t *)(dec + padded);
	for (uint32_t i = 0, g = 0, len = group_size - phase; i < n; i += len, g++, len = group_size) {
		float d = delta[g], inv = d > 0.0f ? 1.0f / d : 0.0f;
		len = n - i < len ? n - i : len;
		uint32_t j = 0;
#ifdef __SSE2__
		/* four at a time: one element at a time was half of this
		 * function's time in lcpfs pack */
		for (__m128 vd = _mm_set1_ps(d), vi = _mm_set1_ps(inv); j + 4 <= len; j += 4) {
			_mm_storeu_ps(dl + i + j, vd);
			_mm_storeu_ps(il + i + j, vi);
		}
#endif
		for (; j < len; j++) {
			dl[i + j] = d;
			il[i + j] = inv;
		}
	}
	lcp_dq_costs c;
	for (unsigned l = 0; l < L; l++) {
		c[0][l] = 0.0f;
		c[1][l] = c[2][l] = c[3][l] = INFINITY;
	}
	uint32_t base = 0;
	switch (form) {
#ifdef LCP_HAVE_DQ_X86
	case LCP_DQ_SEARCH_AVX512:
		lcp_dq_forward_avx512(x, dl, il, steps, c, dec, cand);
		base = steps * L;
		break;
	case LCP_DQ_SEARCH_AVX2:
		lcp_dq_forward_avx2(x, dl, il, steps, c, dec, cand);
		base = steps * L;
		break;
#endif
#ifdef __SSE2__
	case LCP_DQ_SEARCH_SSE2:
		for (; base + L <= n; base += L)
			for (unsigned l = 0; l < L; l += 4)
				dq_step4(x + base + l, dl + base + l, il + base + l, &c[0][l], L,
					 dec + base + l, cand + 4 * (base + l));
		break;
#endif
	default:
		break;
	}
	for (uint32_t i = base; i < n; i++) {
		unsigned l = i % L;
		dq_step1(x[i], dl[i], il[i], &c[0][l], L, dec + i, cand + 4 * (i & ~3u) + (i & 3u));
	}
	/* Back from the last step, the 16 chains side by side (independent
	 * lookups); dec[i] then keeps element i's class for the error sum. */
	uint32_t st[L];
	for (unsigned l = 0; l < L; l++) {
		st[l] = 0;
		for (unsigned k = 1; k < 4; k++)
			if (c[k][l] < c[st[l]][l])
				st[l] = k;
	}
	uint32_t scalar_to = form == LCP_DQ_SEARCH_AVX512 || form == LCP_DQ_SEARCH_AVX2 ? steps : 0;
	for (uint32_t t = padded / L; t-- > scalar_to;)
		for (unsigned l = 0; l < L; l++) {
			uint32_t i = t * L + l;
			if (i >= n)
				continue;
			unsigned pr = dq_pred[st[l]][dec[i] >> st[l] & 1u], q = pr >> 2, p = pr & 1u;
			codes[i] = (uint8_t)(128 + cand[4 * (i & ~3u) + 4 * (2 * q + p) + (i & 3u)]);
			dec[i] = (uint8_t)q;
			st[l] = pr >> 1;
		}
#ifdef LCP_HAVE_DQ_X86
	if (form == LCP_DQ_SEARCH_AVX512)
		lcp_dq_backward_avx512(steps, st, dec, cand, codes);
	else if (form == LCP_DQ_SEARCH_AVX2)
		lcp_dq_backward_avx2(steps, st, dec, cand, codes);
#endif
	float err = 0.0f;
	uint32_t i = 0;
#ifdef __SSE2__
	/* The levels as in lcp_dequant_dq, the squares summed in 4 lanes. */
	__m128 acc = _mm_setzero_ps();
	for (; i + 8 <= n; i += 8) {
		__m128 l0, l1;
		dq_levels8(codes + i, dec + i, 128, &l0, &l1);
		__m128 e0 = _mm_sub_ps(_mm_loadu_ps(x + i), _mm_mul_ps(_mm_loadu_ps(dl + i), l0));
		__m128 e1 = _mm_sub_ps(_mm_loadu_ps(x + i + 4), _mm_mul_ps(_mm_loadu_ps(dl + i + 4), l1));
		acc = _mm_add_ps(acc, _mm_add_ps(_mm_mul_ps(e0, e0), _mm_mul_ps(e1, e1)));
	}
	float lanes[4];
	_mm_storeu_ps(lanes, acc);
	err = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
	for (; i < n; i++) {
		float e = x[i] - dl[i] * (float)lcp_dq_level(codes[i], dec[i]);
		err += e * e;
	}
	return err;
}

float lcp_quant_dq_block(const float *x, uint32_t n, const float *delta, uint32_t group_size,
			 uint32_t phase, uint8_t *codes, void *work)
{
	return lcp_quant_dq_block_with(lcp_quant_dq_search(), x, n, delta, group_size, phase, codes, work);
}

void lcp_dequant_ref(const uint8_t *codes, uint32_t n, float sd, int off, float *y)
{
	for (uint32_t i = 0; i < n; i++)
		y[i] = sd * (float)((int)codes[i] - off);
}

/* (float)c for every byte: exact, so sd * (tab[c] - (float)off) equals
 * sd * (float)(c - off) bit for bit (the subtraction of two small integers
 * is exact in binary32). */
static const float byte_float[256] = {
	0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f,
	8.0f, 9.0f, 10.0f, 11.0f, 12.0f, 13.0f, 14.0f, 15.0f,
	16.0f, 17.0f, 18.0f, 19.0f, 20.0f, 21.0f, 22.0f, 23.0f,
	24.0f, 25.0f, 26.0f, 27.0f, 28.0f, 29.0f, 30.0f, 31.0f,
	32.0f, 33.0f, 34.0f, 35.0f, 36.0f, 37.0f, 38.0f, 39.0f,
	40.0f, 41.0f, 42.0f, 43.0f, 44.0f, 45.0f, 46.0f, 47.0f,
	48.0f, 49.0f, 50.0f, 51.0f, 52.0f, 53.0f, 54.0f, 55.0f,
	56.0f, 57.0f, 58.0f, 59.0f, 60.0f, 61.0f, 62.0f, 63.0f,
	64.0f, 65.0f, 66.0f, 67.0f, 68.0f, 69.0f, 70.0f, 71.0f,
	72.0f, 73.0f, 74.0f, 75.0f, 76.0f, 77.0f, 78.0f, 79.0f,
	80.0f, 81.0f, 82.0f, 83.0f, 84.0f, 85.0f, 86.0f, 87.0f,
	88.0f, 89.0f, 90.0f, 91.0f, 92.0f, 93.0f, 94.0f, 95.0f,
	96.0f, 97.0f, 98.0f, 99.0f, 100.0f, 101.0f, 102.0f, 103.0f,
	104.0f, 105.0f, 106.0f, 107.0f, 108.0f, 109.0f, 110.0f, 111.0f,
	112.0f, 113.0f, 114.0f, 115.0f, 116.0f, 117.0f, 118.0f, 119.0f,
	120.0f, 121.0f, 122.0f, 123.0f, 124.0f, 125.0f, 126.0f, 127.0f,
	128.0f, 129.0f, 130.0f, 131.0f, 132.0f, 133.0f, 134.0f, 135.0f,
	136.0f, 137.0f, 138.0f, 139.0f, 140.0f, 141.0f, 142.0f, 143.0f,
	144.0f, 145.0f, 146.0f, 147.0f, 148.0f, 149.0f, 150.0f, 151.0f,
	152.0f, 153.0f, 154.0f, 155.0f, 156.0f, 157.0f, 158.0f, 159.0f,
	160.0f, 161.0f, 162.0f, 163.0f, 164.0f, 165.0f, 166.0f, 167.0f,
	168.0f, 169.0f, 170.0f, 171.0f, 172.0f, 173.0f, 174.0f, 175.0f,
	176.0f, 177.0f, 178.0f, 179.0f, 180.0f, 181.0f, 182.0f, 183.0f,
	184.0f, 185.0f, 186.0f, 187.0f, 188.0f, 189.0f, 190.0f, 191.0f,
	192.0f, 193.0f, 194.0f, 195.0f, 196.0f, 197.0f, 198.0f, 199.0f,
	200.0f, 201.0f, 202.0f, 203.0f, 204.0f, 205.0f, 206.0f, 207.0f,
	208.0f, 209.0f, 210.0f, 211.0f, 212.0f, 213.0f, 214.0f, 215.0f,
	216.0f, 217.0f, 218.0f, 219.0f, 220.0f, 221.0f, 222.0f, 223.0f,
	224.0f, 225.0f, 226.0f, 227.0f, 228.0f, 229.0f, 230.0f, 231.0f,
	232.0f, 233.0f, 234.0f, 235.0f, 236.0f, 237.0f, 238.0f, 239.0f,
	240.0f, 241.0f, 242.0f, 243.0f, 244.0f, 245.0f, 246.0f, 247.0f,
	248.0f, 249.0f, 250.0f, 251.0f, 252.0f, 253.0f, 254.0f, 255.0f,
};

void lcp_dequant(const uint8_t *codes, uint32_t n, float sd, int off, float *y)
{
	float fo = (float)off;
	uint32_t i = 0;
#ifdef __SSE2__
	/* 16 codes at a time: widen to 32-bit ints, convert (exact), then the
	 * same subtract and multiply as the scalar loop, lane by lane. */
	__m128 vsd = _mm_set1_ps(sd), vo = _mm_set1_ps(fo);
	__m128i z = _mm_setzero_si128();
	for (; i + 16 <= n; i += 16) {
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(codes + i));
		__m128i lo = _mm_unpacklo_epi8(c, z), hi = _mm_unpackhi_epi8(c, z);
		__m128i w[4] = {_mm_unpacklo_epi16(lo, z), _mm_unpackhi_epi16(lo, z),
				_mm_unpacklo_epi16(hi, z), _mm_unpackhi_epi16(hi, z)};
		for (int k = 0; k < 4; k++)
			_mm_storeu_ps(y + i + 4 * k,
				      _mm_mul_ps(vsd, _mm_sub_ps(_mm_cvtepi32_ps(w[k]), vo)));
	}
#endif
	for (; i < n; i++)
		y[i] = sd * (byte_float[codes[i]] - fo);
}

void lcp_dequant_dq_ref(const uint8_t *codes, const uint8_t *cls, uint32_t n, float sd, int off,
			float *y)
{
	for (uint32_t i = 0; i < n; i++) {
		int k = (int)codes[i] - off;
		int sgn = (k > 0) - (k < 0);
		y[i] = sd * (float)(2 * k - (cls[i] ? sgn : 0));
	}
}

void lcp_dequant_dq(const uint8_t *codes, const uint8_t *cls, uint32_t n, float sd, int off,
		    float *y)
{
	uint32_t i = 0;
#ifdef __SSE2__
	__m128 vsd = _mm_set1_ps(sd);
	for (; i + 8 <= n; i += 8) {
		__m128 l0, l1;
		dq_levels8(codes + i, cls + i, off, &l0, &l1);
		_mm_storeu_ps(y + i, _mm_mul_ps(vsd, l0));
		_mm_storeu_ps(y + i + 4, _mm_mul_ps(vsd, l1));
	}
#endif
	lcp_dequant_dq_ref(codes + i, cls + i, n - i, sd, off, y + i);
}
