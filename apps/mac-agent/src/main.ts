// Entry point of the mac-agent bundle; everything heavy is loaded inside the command actions.
import { main } from './cli';

void main();
