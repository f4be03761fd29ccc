// The worker thread that reads one pain.001 document for readPain001 (pain001.ts): the document comes as
// workerData, the reading goes back as the one message, and then the thread is ended.
import { parentPort, workerData } from 'node:worker_threads';
import { parsePain001 } from './pain001.ts';

parentPort?.postMessage(await parsePain001(workerData as string));
