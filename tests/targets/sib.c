/* A USDT probe whose arguments gcc -O2 gives as SIB operands (base + index * scale + offset:
 * "-8@(%rdi,%rax)", "-4@4(%rdi,%rsi,4)"): array elements picked by a run-time index.
 * Prints the three values the probe passes, for the test to compare with what it saw. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

__attribute__((noinline)) static long pick(long *arr, long i)
{
	STAP_PROBE3(pybpf, sib, arr[i + 2], ((int *)arr)[i + 1], i);
	return arr[i + 2];
}

int main(int argc, char **argv)
{
	long arr[16];

	for (int j = 0; j < 16; j++)
		arr[j] = 1000 + j * j;
	long i = argc > 1 ? atol(argv[1]) : 3;
	long picked = pick(arr, i);

	printf("%ld %d %ld\n", picked, ((int *)arr)[i + 1], i);
	return 0;
}
