/* txv8_watchdog.cc: turns a cancel or die request that arrives while JS runs into a V8 termination. */
#include "txv8_engine.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

/*
 * PostgreSQL's signal handlers only set flags (QueryCancelPending, ProcDiePending,
 * InterruptPending) and expect CHECK_FOR_INTERRUPTS() to act on them; pure JS never
 * reaches one, so a thread of ours asks V8 to check the flags on the main thread
 * (txv8_interrupt_check), which terminates the JS if the request is still pending then.
 * The thread never terminates by itself: a request that arrives late (the statement it
 * was meant for already over) does nothing.
 *
 * How the thread learns that a request arrived:
 *  - signal mode (normal): every handler that can set those flags (SIGINT: cancel,
 *    SIGTERM: die, SIGALRM: statement_timeout, SIGUSR1: recovery conflicts) is chained:
 *    PostgreSQL's own handler runs first, then, if JS is running and a cancel or die is
 *    pending, sem_post (async-signal-safe) wakes the thread. Nothing happens per call
 *    but two atomic stores and a flag check; idle or busy, the thread sleeps until a
 *    signal needs it. Signals reach the main thread only (V8's threads and this one
 *    block them all), so a handler runs either before the entry's wd_active store (and
 *    the entry's own flag check sees the request) or after it (and the handler posts).
 *  - poll mode (fallback, when a handler is SIG_DFL/SIG_IGN so there is nothing to
 *    chain): while JS runs, poll the flags every 10 ms; sleep on a condition variable
 *    while idle. Each outermost call then costs a futex wake of the thread and its
 *    wake-ups (about 1.2 context switches per reserveInventory call at c=8).
 * The mode is decided once, when the engine first starts. In signal mode every 256th
 * outermost call re-reads the four handlers and chains again any that something
 * replaced since, so a later pqsignal() cannot silently disable cancels for long.
 */

static std::atomic<bool> wd_active{false};	/* JS runs (outermost entry .. exit) */
static std::atomic<bool> wd_sleeping{false};	/* poll mode: idle on wd_cond */
static bool wd_signal_mode = false;	/* decided once, before the thread starts */
static sem_t wd_sem;
static pthread_mutex_t wd_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static v8::Isolate *wd_isolate = nullptr;	/* under wd_mutex */
static uint32 wd_entries = 0;

static const int wd_signals[] = {SIGINT, SIGTERM, SIGALRM, SIGUSR1};

#define WD_NSIG (int) lengthof(wd_signals)
static struct sigaction wd_chained[WD_NSIG];	/* the handler each wrapper runs first */

/* Runs on the main thread, inside JS: terminate only if the request is still pending now. */
static void
txv8_interrupt_check(v8::Isolate *, void *)
{
	if (txv8_cancel_pending())
		txv8_request_terminate();
}

/* Under wd_mutex: ask V8 to run txv8_interrupt_check if JS runs and a request is pending. */
static void
txv8_watchdog_check_locked(void)
{
	if (wd_active.load() && txv8_cancel_pending() && wd_isolate)
		wd_isolate->RequestInterrupt(txv8_interrupt_check, nullptr);
}

static void
txv8_signal_chain(int sig, siginfo_t *info, void *uctx)
{
	int			save_errno = errno;

	for (int i = 0; i < WD_NSIG; i++)
		if (wd_signals[i] == sig)
		{
			const struct sigaction *prev = &wd_chained[i];

			if (prev->sa_flags & SA_SIGINFO)
				prev->sa_sigaction(sig, info, uctx);
			else
				prev->sa_handler(sig);
			break;
		}
	if (wd_active.load(std::memory_order_relaxed) && txv8_cancel_pending())
		sem_post(&wd_sem);
	errno = save_errno;
}

/* Chain txv8_signal_chain in front of the current handler of each signal (again if replaced). */
static bool
txv8_signals_chain(void)
{
	struct sigaction cur[WD_NSIG];

	for (int i = 0; i < WD_NSIG; i++)
		if (sigaction(wd_signals[i], nullptr, &cur[i]) != 0 ||
			(!(cur[i].sa_flags & SA_SIGINFO) && (cur[i].sa_handler == SIG_DFL || cur[i].sa_handler == SIG_IGN)))
			return false;
	for (int i = 0; i < WD_NSIG; i++)
	{
		if ((cur[i].sa_flags & SA_SIGINFO) && cur[i].sa_sigaction == txv8_signal_chain)
			continue;

		struct sigaction wrap = cur[i];

		/* the saved copy must be complete before the wrapper can run */
		sigset_t	block,
					old;

		sigemptyset(&block);
		sigaddset(&block, wd_signals[i]);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		wd_chained[i] = cur[i];
		wrap.sa_flags |= SA_SIGINFO;
		wrap.sa_sigaction = txv8_signal_chain;
		sigaction(wd_signals[i], &wrap, nullptr);
		pthread_sigmask(SIG_SETMASK, &old, nullptr);
	}
	return true;
}

static void *
txv8_watchdog_main(void *)
{
	for (;;)
	{
		if (wd_signal_mode)
		{
			if (sem_wait(&wd_sem) != 0)
				continue;		/* EINTR */
		}
		else
		{
			pthread_mutex_lock(&wd_mutex);
			if (!wd_active.load())
			{
				wd_sleeping.store(true);
				while (!wd_active.load())
					pthread_cond_wait(&wd_cond, &wd_mutex);
				wd_sleeping.store(false);
			}
			pthread_mutex_unlock(&wd_mutex);

			struct timespec ts = {0, 10 * 1000 * 1000};

			nanosleep(&ts, nullptr);
		}
		pthread_mutex_lock(&wd_mutex);
		txv8_watchdog_check_locked();
		pthread_mutex_unlock(&wd_mutex);
	}
	return nullptr;
}

void
txv8_watchdog_start(void)
{
	pthread_t	wd;

	sem_init(&wd_sem, 0, 0);
	wd_signal_mode = txv8_signals_chain();
	/* called with every signal blocked: the thread inherits that mask */
	pthread_create(&wd, nullptr, txv8_watchdog_main, nullptr);
	pthread_detach(wd);
}

void
txv8_watchdog_set_isolate(v8::Isolate *isolate)
{
	pthread_mutex_lock(&wd_mutex);
	wd_isolate = isolate;
	pthread_mutex_unlock(&wd_mutex);
}

void
txv8_watchdog_enter(void)
{
	wd_active.store(true);
	if (wd_signal_mode)
	{
		if ((++wd_entries & 255) == 0)
			txv8_signals_chain();
		/* a request that arrived before the store above was not posted: look now */
		if (txv8_cancel_pending())
			txv8_isolate->RequestInterrupt(txv8_interrupt_check, nullptr);
	}
	else if (wd_sleeping.load())
	{
		pthread_mutex_lock(&wd_mutex);
		pthread_cond_signal(&wd_cond);
		pthread_mutex_unlock(&wd_mutex);
	}
}

void
txv8_watchdog_leave(void)
{
	wd_active.store(false);
}
