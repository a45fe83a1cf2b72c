/* The functions libbpf-bootstrap's uprobe example probes in its own binary, called N times
 * (argv[1], default 3) as that example calls them: uprobed_add(i, i + 1), uprobed_sub(i * i, i).
 * Prints what each returned, for the test to compare with what the probes saw. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int uprobed_add(int a, int b)
{
	asm volatile("");
	return a + b;
}

__attribute__((noinline)) int uprobed_sub(int a, int b)
{
	asm volatile("");
	return a - b;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;

	for (int i = 0; i < n; i++) {
		int sum = uprobed_add(i, i + 1);
		int diff = uprobed_sub(i * i, i);

		printf("%d %d\n", sum, diff);
	}
	return 0;
}
