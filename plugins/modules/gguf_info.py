#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aistack.infra contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: gguf_info
short_description: Read a GGUF model file's header (architecture, trained context length)
version_added: 0.1.0
description:
  - Reads the metadata of a GGUF file (llama.cpp's model format, versions 2 and 3) without loading
    its tensors, so that a role can check its settings against the model before it starts a server,
    e.g. refuse a context size above the trained one (C(<architecture>.context_length)).
  - Never changes anything.
author:
  - aistack.infra maintainers (@aistack)
extends_documentation_fragment:
  - aistack.infra.attributes.info_module
options:
  path:
    description: The GGUF file.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Read the model's trained context length
  aistack.infra.gguf_info:
    path: /var/lib/aistack/models/model.gguf
  register: model
- name: Refuse a larger context
  ansible.builtin.assert:
    that: llm_ctx_size | int <= model.context_length
"""

RETURN = r"""
architecture:
  description: C(general.architecture).
  returned: always
  type: str
  sample: gemma3
name:
  description: C(general.name); null when the file has none.
  returned: always
  type: str
  sample: Gemma 3 270m It
context_length:
  description: The trained context length (C(<architecture>.context_length)); null when the file has none.
  returned: always
  type: int
  sample: 32768
block_count:
  description: The number of layers (C(<architecture>.block_count)), the most C(--n-gpu-layers) can offload.
  returned: always
  type: int
  sample: 18
file_type:
  description: C(general.file_type) (llama.cpp's quantisation code, 15 = Q4_K_M).
  returned: always
  type: int
gguf_version:
  description: GGUF format version.
  returned: always
  type: int
  sample: 3
tensor_count:
  description: Number of tensors.
  returned: always
  type: int
metadata:
  description: Every scalar metadata key and its value (arrays such as the vocabulary are left out).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.infra.plugins.module_utils._gguf import GGUFError, model_summary


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type='path', required=True)),
        supports_check_mode=True,
    )
    try:
        summary = model_summary(module.params['path'])
    except (OSError, IOError) as exc:
        module.fail_json(msg='cannot read %s: %s' % (module.params['path'], exc))
    except GGUFError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **summary)


if __name__ == '__main__':
    main()
