"""Phrase rules for instructions aimed at the model: overrides, hijacked goals, leaks and exfiltration.

Weights and scoring are explained in `keel.guardrails._injection_patterns`.
"""

from __future__ import annotations

from typing import Final

from keel.guardrails._injection_lexicon import IGNORE_INSTRUCTIONS, MODEL, RULE_NOUN, Rule, rule

__all__ = ["RULES"]

RULES: Final[tuple[Rule, ...]] = (
    rule(
        "ignore_instructions",
        "instruction_override",
        1.0,
        IGNORE_INSTRUCTIONS,
    ),
    rule(
        "ignore_instructions_i18n",
        "instruction_override",
        1.0,
        # The same order in the languages attacks are most often translated into.
        r"\bignor(?:a|e|ez|ar)\s+(?:todas\s+|toutes\s+|tutte\s+|todos\s+)?(?:las|les|le|as|os|los)\s+"
        r"(?:instrucciones|instructions|istruzioni|instru[cç][õo]es|indicaciones)\s+(?:anteriores|pr[ée]c[ée]dentes|"
        r"precedenti|previas|prévias)"
        r"|\bignorier(?:e|en)?\s+(?:alle\s+)?(?:vorherigen|bisherigen|vorigen|obigen)\s+(?:anweisungen|instruktionen|"
        r"befehle|regeln)|\bnegeer\s+(?:alle\s+)?(?:vorige|eerdere|voorgaande)\s+(?:instructies|opdrachten)",
    ),
    rule(
        "ignore_above",
        "instruction_override",
        0.5,
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+of\s+|everything\s+|all\s+)?(?:the\s+|that\s+)?"
        r"(?:above|before\s+this|you\s+(?:have\s+|'ve\s+)?been\s+told|said\s+(?:above|before))\b",
    ),
    rule(
        "new_instructions",
        "instruction_override",
        1.0,
        r"\b(?:new|real|actual|true|secret|hidden|override)\s+(?:system\s+)?(?:instructions?|directives?)\s*[:\-]"
        r"|\bnew\s+(?:task|goal|objective|mission|persona|role)\s*:"
        r"|\byour\s+(?:new|real|actual|true|only|updated)\s+(?:task|goal|job|purpose|objective|mission|"
        r"instructions?|role|directive)s?\s+(?:is|are|will\s+be|:)",
    ),
    rule(
        "instructions_void",
        "instruction_override",
        1.0,
        # "your previous guidance no longer applies", "your instructions have been updated by the administrator"
        r"\b(?:your\s+(?:previous\s+|prior\s+|original\s+|earlier\s+|current\s+)?|(?:the\s+|all\s+)?"
        r"(?:previous|prior|original|earlier|above|system)\s+)" + RULE_NOUN + r"\s+"
        r"(?:(?:from|by|of)\s+[\w-]+\s+)?(?:(?:have|has)\s+been\s+(?:updated|changed|replaced|revoked|overridden|cancell?ed|modified|lifted|"
        r"suspended|superseded|disabled)|(?:no\s+longer|do\s+not|don'?t|does\s+not)\s+appl(?:y|ies)|(?:is|are)\s+(?:now\s+)?"
        r"(?:void|invalid|obsolete|outdated|cancell?ed|revoked|overridden|suspended|superseded|disabled|fake|"
        r"no\s+longer\s+valid))\b"
        r"|\b(?:these|the\s+following)\s+(?:are|is)\s+(?:your|the)\s+(?:new|updated|real)\s+" + RULE_NOUN + r"\b",
    ),
    rule(
        "updated_instructions",
        "instruction_override",
        0.5,
        r"\b(?:updated|revised|important|additional)\s+(?:system\s+)?instructions?\s*:",
    ),
    rule(
        "from_now_on",
        "instruction_override",
        0.5,
        r"\bfrom\s+now\s+on,?\s+(?:you|your|the\s+assistant|always|never|only|respond|reply|answer|ignore|act)\b",
    ),
    rule(
        "from_now_on_respond",
        "instruction_override",
        1.0,
        # About the model's own replies, unlike "from now on you will receive our newsletter".
        r"\bfrom\s+now\s+on,?\s+(?:you\s+(?:must\s+|will\s+|should\s+|shall\s+)?|the\s+assistant\s+)?"
        r"(?:respond|reply|answer|act|behave|speak|talk|output|write|ignore|always|never|only)\b",
    ),
    rule(
        "redirect_task",
        "instruction_override",
        1.0,
        # Orders for how the model should treat the user or shape its answer: "ignore the user's question",
        # "when summarizing, state that …", "before answering, first say …".
        r"\b(?:ignore|disregard)\s+(?:the\s+)?user'?s\s+(?:question|request|message|query|input|prompt|task)"
        r"|\b(?:when|while|before|after|in)\s+(?:summari[sz]ing|answering|responding|replying|translating|"
        r"your\s+(?:summary|answer|response|reply))\b[^.\n]{0,40}?\b(?:state|say|mention|claim|tell|write|include|"
        r"add|insert|recommend|respond|reply|first)\b"
        r"|\b(?:say|reply|respond|answer|output|print|write)\s+(?:only\s+)?(?:with\s+)?[\"'‘“][^\"'’”\n]{1,80}"
        r"[\"'’”]\s+and\s+nothing\s+else\b",
    ),
    rule(
        "reveal_prompt",
        "instruction_override",
        1.0,
        r"\b(?:reveal|print|show|repeat|output|display|leak|dump|recite|disclose|tell\s+me|give\s+me|write\s+out|"
        r"what\s+(?:is|are|were))\s+(?:me\s+|us\s+)?(?:(?:the|your|all|any|full|entire|exact|complete|verbatim)\s+)*"
        r"(?:(?:system|initial|original|hidden|secret|developer)\s+(?:prompt|message|instructions)|"
        r"(?<=your\s)(?:instructions|prompt|configuration|config|system\s+settings)|"
        r"(?:prompt|instructions|text|everything)\s+(?:above|before\s+this))\b"
        r"|\b(?:words|lines|sentences|characters|tokens|text|content|part|beginning|start)\s+of\s+(?:your|the)\s+"
        r"(?:system\s+)?(?:prompt|instructions)\b",
    ),
    rule(
        "hide_from_user",
        "instruction_override",
        1.0,
        r"\b(?:do\s+not|don'?t|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|alert(?:ing)?|"
        r"ask(?:ing)?|warn(?:ing)?|(?:mention|reveal|show|disclos)(?:e|ing)?\s+(?:this\s+|it\s+)?to)\s+"
        r"(?:the|this)\s+(?:user|human|operator)\b",
    ),
    rule(
        "addressed_to_model",
        "instruction_override",
        1.0,
        r"\b(?:note|notice|message|instructions?|attention|reminder|memo|directive|alert)s?\s+(?:to|for)\s+"
        r"(?:the\s+|any\s+|all\s+)?"
        + MODEL
        + r"s?\b|\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|large\s+language\s+model|language\s+model|"
        r"automated\s+assistant|ai\s+assistant|chat\s*bot)\b"
        r"|\b(?:" + MODEL + r"|(?:ai|llm|gpt)\s+(?:assistant|agent|model|system|bot)s?)s?\s+(?:reading|processing|"
        r"parsing|summari[sz]ing|analy[sz]ing)\s+(?:this|these|the)\b"
        r"|\b(?:when|once|if|after)\s+(?:the\s+|an?\s+|any\s+)?" + MODEL + r"\s+(?:reads|sees|processes|"
        r"summari[sz]es|parses|encounters|loads)\b"
        r"|\b" + MODEL + r"s?\s+(?:that|who|which)\s+(?:reads?|sees?|process(?:es)?|summari[sz]es?)\s+(?:this|these)\b"
        # "AI assistants: ignore …", "LLMs, always …": a generic address to models followed by an order (a
        # customer who writes "Assistant, where is my order?" addresses one assistant and asks a question).
        r"|\b(?:(?:ai|llm|gpt)\s+(?:assistant|agent|model|system|bot)s?|ai|llms?|language\s+models?|"
        r"(?:assistant|chat\s*bot)s)\s*[:,]\s*(?:please\s+)?(?:ignore|disregard|forget|you\s+must|do\s+not|"
        r"don'?t|never|always|stop|recommend|send|call|invoke|include|insert|instead|when\s+you|if\s+you|"
        r"you\s+(?:should|will|are|need))\b",
    ),
    rule(
        "model_must",
        "instruction_override",
        0.5,
        # 0.5: a help page may say "the assistant must verify your identity"; "our assistant" never counts.
        r"(?<!our\s)(?<!your\s)(?<!my\s)(?<!virtual\s)\b(?:the\s+)?(?:ai|assistant|llm|language\s+model|chat\s*bot)"
        r"\s+(?:must|shall|needs?\s+to|has\s+to|is\s+(?:required|instructed|authori[sz]ed)\s+to|will\s+now|"
        r"should\s+now)\b",
    ),
    rule(
        "jailbreak_strong",
        "instruction_override",
        1.0,
        r"\bdo\s+anything\s+now\b|\b(?:jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|evil)\s+mode\b"
        r"|\b(?:disable|turn\s+off|deactivate|remove|bypass|lift)\s+your\s+(?:safety\s+|content\s+)?(?:filters|"
        r"guardrails|safeguards|restrictions|limits|rules)\b"
        r"|\b(?:without|no|free\s+(?:of|from)|ignore|bypass|ignoring)\s+(?:any\s+|all\s+|your\s+)?"
        r"(?:ethical|moral|safety|content)\s+(?:guidelines|restrictions|filters|constraints|limits|policies|rules)\b",
    ),
    rule(
        "jailbreak_weak",
        "instruction_override",
        0.5,
        r"\b(?:developer|dev|god|sudo|debug|admin|maintenance)\s+mode\b|\bjailbr(?:eak|oken|eaking)\b"
        r"|\b(?:disable|turn\s+off|deactivate|remove)\s+(?:your\s+|all\s+|the\s+)*(?:safety\s+|content\s+)?"
        r"(?:filters|guardrails|safeguards)\b|\b(?:stay|remain)\s+in\s+character\b|\bwith\s+no\s+(?:restrictions|limitations|filters|guidelines|rules|limits)\b",
    ),
    rule(
        "exfiltrate",
        "instruction_override",
        1.0,
        # Secrets are never sent on request; conversations and customer data only to an outside address
        # ("forward the conversation with the courier to my email" is a customer's wish).
        r"\b(?:send|forward|post|upload|email|exfiltrate|transmit|leak)\s+(?:the\s+|all\s+|this\s+|your\s+)*"
        r"(?:system\s+prompt|credentials|api\s+keys?|passwords?|secrets?|access\s+tokens?|session\s+tokens?)\b"
        r"|\b(?:send|forward|post|upload|email|exfiltrate|transmit|leak)\s+(?:the\s+|all\s+|this\s+|your\s+|"
        r"entire\s+|whole\s+)*(?:conversations?|chat\s+history|customer\s+(?:data|records)|user'?s?\s+data)\b"
        r".{0,60}?\bto\s+(?:https?://|[\w.+-]+@|an?\s+external\b|this\s+(?:url|address|endpoint))",
    ),
    rule(
        "markdown_exfiltration",
        "instruction_override",
        1.0,
        # ![x](https://host/p.png?d=ORDER_DETAILS_HERE): an image the model is meant to fill in and render.
        r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]*[?&][\w-]+=(?:[^)\s&]*(?:\{|%7b|\[|\$)|[a-z0-9]*_[a-z0-9_]{4,})",
    ),
    rule(
        "decode_and_follow",
        "encoded_instructions",
        0.5,
        r"\b(?:decode|base64[-\s]decode|decipher|rot13|unscramble)\b.{0,60}?\b(?:follow|execute|obey|comply|"
        r"carry\s+out|do\s+what)\b",
    ),
)
