/* Parallel key generation: RSA keygen dominates `kboot init`, and keys are independent,
 * so a batch runs on one thread per core. OpenSSL 3 is thread-safe for this as long as
 * each thread uses its own EVP_PKEY_CTX (EVP_PKEY_Q_keygen makes one per call). */
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
        size_t i = p->next++;
        int stop = p->failed || i >= p->n;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            return NULL;
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
    struct pool p = { .algs = algs, .out = out, .n = n };
    pthread_mutex_init(&p.lock, NULL);
    size_t want = nthreads > 0 ? (size_t)nthreads : (size_t)kb_pki_ncpu();
    if (want > n)
        want = n;
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
    if (p.failed) {
        for (size_t i = 0; i < n; i++) {
            EVP_PKEY_free(out[i]);
            out[i] = NULL;
        }
        if (e)
            *e = p.err;
        return -1;
    }
    return 0;
}
