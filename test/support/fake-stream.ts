/** A stderr stand-in for reporter tests: a terminal or not, of a given width, that keeps what it got. */
import { Writable } from 'node:stream';

export type FakeStream = NodeJS.WriteStream & { text: () => string };

export function fakeStream(tty: boolean, columns = 0): FakeStream {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as unknown as FakeStream;
  const put = (text: string): boolean => {
    chunks.push(text);
    return true;
  };
  // The cursor calls of a terminal stream, writing the sequences a terminal would get.
  const cursor = {
    cursorTo: (x: number) => put(`\u001b[${x + 1}G`),
    moveCursor: (dx: number, dy: number) =>
      put(`${dy < 0 ? `\u001b[${-dy}A` : dy > 0 ? `\u001b[${dy}B` : ''}${dx === 0 ? '' : `\u001b[${Math.abs(dx)}${dx < 0 ? 'D' : 'C'}`}`),
    clearLine: () => put('\u001b[2K'),
  };
  Object.assign(w, { isTTY: tty, columns, text: () => chunks.join('') }, tty ? cursor : {});
  return w;
}
