/* A user-space program for uprobe and USDT tests: each line read from stdin ("N WORD") calls the
 * probed functions and fires the USDT probes, then one line is printed back, so a test knows the
 * probes ran. Built by the tests with gcc (-O2, symbols kept) and <sys/sdt.h>. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <string.h>
#include <sys/sdt.h>

/* The kernel increments these while a USDT probe that names them is attached. */
unsigned short pybpf_tick_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short pybpf_plain_semaphore __attribute__((unused)) __attribute__((section(".probes")));

__attribute__((noinline)) int pybpf_add(int a, int b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

__attribute__((noinline)) size_t pybpf_greet(const char *who)
{
	__asm__ volatile("" ::: "memory");
	return strlen(who);
}

int main(void)
{
	char word[64];
	int n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (scanf("%d %63s", &n, word) == 2) {
		volatile long big = 1L << 40 | n;
		short neg = -n;
		int sum = pybpf_add(n, 1000);
		size_t len = pybpf_greet(word);

		/* Arguments the compiler places in a register, in memory and as a constant. */
		STAP_PROBE4(pybpf, tick, n, big, neg, 77);
		/* A probe with no arguments. */
		STAP_PROBE(pybpf, plain);
		printf("%d %zu %u\n", sum, len, (unsigned)pybpf_tick_semaphore);
	}
	return 0;
}
