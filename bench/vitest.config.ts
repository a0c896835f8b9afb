import { punchcardProject } from '../vitest.shared.js';

export default punchcardProject('bench');
