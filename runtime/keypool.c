/* Batch key generation. RSA keygen dominates `kboot init` and keys are independent, so RSA
 * keys are made on one thread per core; OpenSSL 3 is thread-safe for this as long as each
 * thread uses its own EVP_PKEY_CTX (EVP_PKEY_Q_keygen makes one per call). EC and Ed25519
 * keys take ~30 us each: starting threads costs more than that, so they are made inline,
 * from one EVP_PKEY_CTX per algorithm (the curve is set up once, not once per key). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kboot/pki.h"

#define MAX_THREADS 64

struct pool {
    pthread_mutex_t lock;
    const int *algs;
    const size_t *idx; /* the batch positions this pool makes */
    EVP_PKEY **out;
    size_t n, next;
    int failed;
    kb_err err; /* the first failure */
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t j = p->next++;
        int stop = p->failed || j >= p->n;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            return NULL;
        size_t i = p->idx[j];
        kb_err e;
        EVP_PKEY *k = kb_pki_keygen(p->algs[i], &e);
        pthread_mutex_lock(&p->lock);
        if (k)
            p->out[i] = k;
        else if (!p->failed++)
            p->err = e;
        pthread_mutex_unlock(&p->lock);
    }
}

int kb_pki_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int cheap(int alg) { return alg == KB_ALG_P256 || alg == KB_ALG_P384 || alg == KB_ALG_ED25519; }

/* A keygen context for a cheap algorithm, reused for every key of it in the batch. */
static EVP_PKEY_CTX *cheap_ctx(int alg)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg == KB_ALG_ED25519 ? "ED25519" : "EC", NULL);
    if (c && EVP_PKEY_keygen_init(c) > 0 &&
        (alg == KB_ALG_ED25519 || EVP_PKEY_CTX_set_group_name(c, alg == KB_ALG_P256 ? "P-256" : "P-384") > 0))
        return c;
    EVP_PKEY_CTX_free(c);
    return NULL;
}

/* Every cheap key of the batch on this thread; the first failure stops. */
static int inline_keys(const int *algs, size_t n, EVP_PKEY **out, kb_err *e)
{
    EVP_PKEY_CTX *ctx[KB_ALG_COUNT] = { NULL };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int a = algs[i];
        if (!cheap(a))
            continue;
        if (!ctx[a] && !(ctx[a] = cheap_ctx(a)))
            rc = kb_err_ssl(e, "keygen", "setting up %s key generation failed", kb_pki_alg_name(a));
        else if (EVP_PKEY_generate(ctx[a], &out[i]) <= 0) {
            out[i] = NULL;
            rc = kb_err_ssl(e, "keygen", "generating a %s key failed", kb_pki_alg_name(a));
        }
    }
    for (int a = 0; a < KB_ALG_COUNT; a++)
        EVP_PKEY_CTX_free(ctx[a]);
    return rc;
}

static void free_all(EVP_PKEY **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY_free(out[i]);
        out[i] = NULL;
    }
}

int kb_pki_keygen_batch(const int *algs, size_t n, EVP_PKEY **out, int nthreads, kb_err *e)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!kb_pki_alg_name(algs[i]))
            return kb_err_set(e, "keygen", "unknown key algorithm %d at %zu", algs[i], i + 1);
    if (n == 0)
        return 0;
    /* Initialise OpenSSL (providers, DRBG) once here, not racily from the workers. */
    OPENSSL_init_crypto(0, NULL);
    if (inline_keys(algs, n, out, e) < 0) {
        free_all(out, n);
        return -1;
    }
    size_t *idx = malloc(n * sizeof *idx), slow = 0;
    if (!idx) {
        free_all(out, n);
        return kb_err_set(e, "keygen", "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (!cheap(algs[i]))
            idx[slow++] = i;
    if (slow == 0) {
        free(idx);
        return 0;
    }
    struct pool p = { .algs = algs, .idx = idx, .out = out, .n = slow };
    pthread_mutex_init(&p.lock, NULL);
    size_t want = nthreads > 0 ? (size_t)nthreads : (size_t)kb_pki_ncpu();
    if (want > slow)
        want = slow;
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    pthread_t tid[MAX_THREADS];
    size_t started = 0;
    /* The calling thread is one of the workers, so a failed pthread_create only slows down. */
    for (; started + 1 < want; started++)
        if (pthread_create(&tid[started], NULL, worker, &p) != 0)
            break;
    worker(&p);
    for (size_t i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&p.lock);
    free(idx);
    if (p.failed) {
        free_all(out, n);
        if (e)
            *e = p.err;
        return -1;
    }
    return 0;
}
