"""docker-style random names (adjective_scientist)."""
from __future__ import annotations

import random
import re

_LEFT = ("admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave busy "
         "charming clever cool compassionate competent confident crazy dazzling determined distracted "
         "dreamy eager ecstatic elastic elated elegant eloquent epic fervent festive flamboyant focused "
         "friendly frosty gallant gifted goofy gracious happy hardcore heuristic hopeful hungry infallible "
         "inspiring jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty "
         "nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless "
         "quirky quizzical relaxed reverent romantic sad serene sharp silly sleepy stoic strange suspicious "
         "sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful "
         "xenodochial youthful zealous zen").split()
_RIGHT = ("albattani allen almeida archimedes ardinghelli babbage banach bardeen bartik bassi bell benz "
          "bhabha bohr booth borg bose brahmagupta brattain brown carson chandrasekhar clarke colden "
          "cori curie darwin davinci dijkstra dubinsky easley einstein elion engelbart euclid euler "
          "fermat fermi feynman franklin galileo gates goldberg goldstine goldwasser golick goodall hamilton "
          "hawking heisenberg hermann hodgkin hoover hopper hypatia jackson jang jennings jepsen johnson "
          "joliot kalam kapitsa keller kepler khorana kilby kirch knuth kowalevski lalande lamarr lamport "
          "leakey leavitt lewin lichterman liskov lovelace lumiere mahavira mayer mccarthy mcclintock "
          "mclean meitner mendel merkle mirzakhani morse murdock napier nash neumann newton nobel noether "
          "northcutt noyce panini pare pascal pasteur payne perlman pike poincare ptolemy raman ramanujan "
          "ride ritchie roentgen rosalind saha sammet shamir shannon shaw shockley sinoussi snyder spence "
          "stonebraker swanson swartz tesla thompson torvalds turing varahamihira visvesvaraya wescoff "
          "wiles williams wilson wing wozniak wright yalow yonath").split()

# docker's rule for container names
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def random_name() -> str:
    return f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name) <= 253
