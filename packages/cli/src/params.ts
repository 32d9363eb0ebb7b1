/** PEFT's print_trainable_parameters, in one line. */
export function trainableSummary(trainable: number, frozen: number): string {
  const total = trainable + frozen;
  const fmt = (n: number) => n.toLocaleString('en-US');
  return `trainable params: ${fmt(trainable)} || all params: ${fmt(total)} || trainable%: ${((100 * trainable) / total).toFixed(4)}`;
}
